"""Telling train-id PNGs from label-id predictions, so that the wrong folder is an error and not a score of ~0.

``cityscapes-seg predict`` writes both ``trainIds/`` (0..18, 255 = ignore) and ``labelIds/`` (the official
result format). Scored as label ids, train ids give an mIoU near 0 and no error: every value 0..18 is a
valid label id. What gives them away: a model's label-id prediction holds the ids of the 19 evaluated
classes (7..33) and 0 where it ignores, never the void ids 1..6; a train-id image is full of them (1
sidewalk, 2 building, 3 wall, 4 fence, 5 pole, 6 traffic light). Any real label-id image, ground truth
included, also holds ids above 18 (sky, vegetation, cars, people, signs). So a folder is taken for train
ids when each of its first few predictions holds only values 0..18 and 255, and one of them 1..6 or 255.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .dataset import DatasetError
from .scoring import read_label_image

SAMPLED_FILES = 3
HIGHEST_TRAIN_ID = 18
IGNORE_TRAIN_ID = 255
VOID_LABEL_IDS = range(1, 7)  # ego vehicle .. ground: never predicted as label ids, common as train ids


def present_values(image: np.ndarray) -> Optional[np.ndarray]:
    """The distinct values of an 8-bit image, or None for other images (not train ids)."""
    if image.dtype != np.uint8 or image.ndim != 2:
        return None
    return np.flatnonzero(np.bincount(image.ravel(), minlength=256))


def looks_like_train_ids(images: Sequence[np.ndarray]) -> bool:
    """True when every image holds only 0..18 and 255, and one of them a void label id (1..6) or 255."""
    telling = False
    for image in images:
        values = present_values(image)
        if values is None or values.size == 0:
            return False
        if np.any((values > HIGHEST_TRAIN_ID) & (values != IGNORE_TRAIN_ID)):
            return False
        telling = telling or bool(np.isin(values, [*VOID_LABEL_IDS, IGNORE_TRAIN_ID]).any())
    return telling


def reject_train_id_predictions(predictions: Sequence[Path], prediction_dir: Path) -> None:
    """DatasetError naming the folder when the first predictions are train ids rather than label ids."""
    sample = list(predictions[:SAMPLED_FILES])
    if not sample or not looks_like_train_ids([read_label_image(path) for path in sample]):
        return
    label_ids_dir = prediction_dir.parent / "labelIds"
    where = f"pass {label_ids_dir}" if label_ids_dir.is_dir() else "pass the labelIds/ folder of `predict` or `run`"
    raise DatasetError(
        f"{prediction_dir} holds train-id PNGs (values 0..18 and 255, e.g. {sample[0].name}), "
        f"not label ids (the official result format, 0..33): {where}"
    )
