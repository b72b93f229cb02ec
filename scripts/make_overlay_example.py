"""docs/images/overlay_example.png: the node's overlay of a synthetic street scene, made with the package's tools.

The labels are drawn, not predicted (no released checkpoint is downloaded here): sky, buildings, road,
sidewalk, a car and a person; the image is those regions with texture. The overlay and the colours come
from cityscapes_seg_ros.visualize, as the node publishes them.
    .venv/bin/python scripts/make_overlay_example.py
"""

from pathlib import Path

import cv2
import numpy as np

from cityscapes_seg_ros.labels import TRAIN_CLASS_NAMES
from cityscapes_seg_ros.visualize import colorize, overlay

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "overlay_example.png"


def scene(height: int = 192, width: int = 384) -> tuple[np.ndarray, np.ndarray]:
    ids = {name: i for i, name in enumerate(TRAIN_CLASS_NAMES)}
    labels = np.full((height, width), ids["sky"], np.uint8)
    labels[40:120] = ids["building"]
    labels[120:] = ids["sidewalk"]
    cv2.fillPoly(labels, [np.array([[150, 120], [234, 120], [384, 192], [0, 192]])], ids["road"])
    cv2.rectangle(labels, (200, 118), (280, 160), ids["car"], -1)
    cv2.rectangle(labels, (80, 95), (96, 150), ids["person"], -1)
    cv2.rectangle(labels, (330, 20), (336, 130), ids["pole"], -1)
    rng = np.random.default_rng(0)
    base = np.take(
        np.array(
            [
                [90, 90, 90],
                [140, 140, 150],
                [120, 110, 100],
                [110, 110, 110],
                [170, 120, 90],
                [200, 180, 160],
                [60, 60, 60],
                [210, 210, 200],
                [60, 110, 50],
                [100, 150, 90],
                [230, 200, 150],
                [180, 120, 90],
                [150, 60, 60],
                [40, 40, 160],
                [60, 60, 120],
                [60, 100, 140],
                [80, 120, 140],
                [40, 40, 200],
                [120, 40, 60],
            ],
            np.int16,
        ),
        labels,
        axis=0,
    )
    image_rgb = np.clip(base + rng.integers(-3, 4, base.shape[:2])[:, :, None], 0, 255).astype(np.uint8)
    return image_rgb, labels


def main() -> None:
    image_rgb, labels = scene()
    panel = np.concatenate([image_rgb, colorize(labels), overlay(image_rgb, labels, 0.5)], axis=1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(OUT), panel[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
