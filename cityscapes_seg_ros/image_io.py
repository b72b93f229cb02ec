"""Reading images and writing results atomically (a killed run never leaves a half-written file behind)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def read_bgr(path: Path) -> np.ndarray:
    """Read an image as 3-channel uint8 BGR (grey and alpha images converted, as mmcv does)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError("not a readable image (corrupt, truncated or unsupported format)")
    return image


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the pid: processes never share a temp file
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_png(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` as PNG and write it atomically."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"could not encode {path}")
    write_atomic(path, encoded.tobytes())
