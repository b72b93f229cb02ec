"""Synthetic data in the Cityscapes layout, for tests and benchmarks (no real data needed).

Ground truth: a grid of "stuff" regions (evaluated and ignored label ids) with rectangles of instance
classes on top (ids ``label_id * 1000 + k``, caravan and trailer included), some as crowd regions without
an instance id. Predictions: the ground truth with shifted objects and regions overwritten by random label
ids 0..33 (ignored ids included).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Tuple

import cv2
import numpy as np

from cityscapes_seg_ros.evaluation.dataset import GT_INSTANCES_SUFFIX, GT_LABELS_SUFFIX, IMAGE_SUFFIX
from cityscapes_seg_ros.labels import LABELS

STUFF_IDS = tuple(lb.id for lb in LABELS if 0 <= lb.id and not lb.has_instances)
INSTANCE_IDS = tuple(lb.id for lb in LABELS if lb.has_instances)
ALL_IDS = tuple(lb.id for lb in LABELS if lb.id >= 0)


@dataclass(frozen=True)
class SyntheticFrame:
    key: str
    gt_label_ids: np.ndarray  # uint8 [H, W]
    gt_instance_ids: np.ndarray  # uint16 [H, W]
    prediction: np.ndarray  # uint8 [H, W] label ids


def make_frame(
    key: str,
    size: Tuple[int, int],
    rng: np.random.Generator,
    absent_ids: Iterable[int] = (),
    predicted_only_ids: Iterable[int] = (),
    objects: int = 12,
) -> SyntheticFrame:
    """One ground truth and prediction of ``size`` (h, w); ``absent_ids`` appear in neither,
    ``predicted_only_ids`` only in the prediction."""
    height, width = size
    absent = set(absent_ids)
    not_in_gt = absent | set(predicted_only_ids)
    stuff = np.array([i for i in STUFF_IDS if i not in not_in_gt])
    things = np.array([i for i in INSTANCE_IDS if i not in not_in_gt])
    grid = rng.choice(stuff, size=(8, 16))
    labels = cv2.resize(grid.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    instances = labels.astype(np.uint16)
    prediction = labels.copy()
    for index in range(objects):
        label_id = int(rng.choice(things))
        top, left, bottom, right = _random_box(rng, height, width)
        crowd = index % 5 == 4  # crowd regions keep the bare label id, as in Cityscapes
        labels[top:bottom, left:right] = label_id
        instances[top:bottom, left:right] = label_id if crowd else label_id * 1000 + index
        shift_y, shift_x = rng.integers(-3, 4, size=2) * max(1, min(height, width) // 64)
        prediction[
            max(0, top + shift_y) : max(0, bottom + shift_y), max(0, left + shift_x) : max(0, right + shift_x)
        ] = label_id if rng.random() < 0.7 else int(rng.choice(things))
    for _ in range(objects):
        top, left, bottom, right = _random_box(rng, height, width)
        prediction[top:bottom, left:right] = rng.choice([i for i in ALL_IDS if i not in absent])
    return SyntheticFrame(key, labels, instances, prediction)


def _random_box(rng: np.random.Generator, height: int, width: int) -> Tuple[int, int, int, int]:
    box_h = int(rng.integers(max(1, height // 16), max(2, height // 3)))
    box_w = int(rng.integers(max(1, width // 16), max(2, width // 4)))
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    return top, left, top + box_h, left + box_w


def write_split(
    root: Path,
    prediction_dir: Path,
    split: str = "val",
    cities: Iterable[str] = ("aachen", "bochum"),
    frames_per_city: int = 3,
    size: Tuple[int, int] = (64, 128),
    seed: int = 0,
    absent_ids: Iterable[int] = (),
    predicted_only_ids: Iterable[int] = (),
    with_images: bool = False,
    objects: int = 12,
) -> List[SyntheticFrame]:
    """Write gtFine/<split> (and leftImg8bit/<split> with random pixels) under ``root`` and the predictions
    as <prediction_dir>/<city>/<key>_leftImg8bit.png."""
    rng = np.random.default_rng(seed)
    frames = []
    for city in cities:
        for index in range(frames_per_city):
            frame = make_frame(
                f"{city}_{index:06d}_{19 + index:06d}", size, rng, absent_ids, predicted_only_ids, objects
            )
            gt_dir = root / "gtFine" / split / city
            gt_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(gt_dir / f"{frame.key}{GT_LABELS_SUFFIX}"), frame.gt_label_ids)
            cv2.imwrite(str(gt_dir / f"{frame.key}{GT_INSTANCES_SUFFIX}"), frame.gt_instance_ids)
            (prediction_dir / city).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(prediction_dir / city / f"{frame.key}{IMAGE_SUFFIX}"), frame.prediction)
            if with_images:
                image_dir = root / "leftImg8bit" / split / city
                image_dir.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                cv2.imwrite(str(image_dir / f"{frame.key}{IMAGE_SUFFIX}"), pixels)
            frames.append(frame)
    return frames
