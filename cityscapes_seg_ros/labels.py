"""The Cityscapes label table: ids, train ids, names, categories and official colours.

Every part of the package (models, visualisation, evaluation, the node) reads labels from here.
The values are those of the Cityscapes benchmark (cityscapesScripts' ``labels.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

IGNORE_TRAIN_ID = 255
NUM_TRAIN_CLASSES = 19


@dataclass(frozen=True)
class Label:
    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: Tuple[int, int, int]  # RGB


LABELS: Tuple[Label, ...] = (
    #     name                    id  train category      cat  inst   ignore  color
    Label("unlabeled",             0, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("ego vehicle",           1, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("rectification border",  2, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("out of roi",            3, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("static",                4, 255, "void",         0, False, True,  (0, 0, 0)),
    Label("dynamic",               5, 255, "void",         0, False, True,  (111, 74, 0)),
    Label("ground",                6, 255, "void",         0, False, True,  (81, 0, 81)),
    Label("road",                  7,   0, "flat",         1, False, False, (128, 64, 128)),
    Label("sidewalk",              8,   1, "flat",         1, False, False, (244, 35, 232)),
    Label("parking",               9, 255, "flat",         1, False, True,  (250, 170, 160)),
    Label("rail track",           10, 255, "flat",         1, False, True,  (230, 150, 140)),
    Label("building",             11,   2, "construction", 2, False, False, (70, 70, 70)),
    Label("wall",                 12,   3, "construction", 2, False, False, (102, 102, 156)),
    Label("fence",                13,   4, "construction", 2, False, False, (190, 153, 153)),
    Label("guard rail",           14, 255, "construction", 2, False, True,  (180, 165, 180)),
    Label("bridge",               15, 255, "construction", 2, False, True,  (150, 100, 100)),
    Label("tunnel",               16, 255, "construction", 2, False, True,  (150, 120, 90)),
    Label("pole",                 17,   5, "object",       3, False, False, (153, 153, 153)),
    Label("polegroup",            18, 255, "object",       3, False, True,  (153, 153, 153)),
    Label("traffic light",        19,   6, "object",       3, False, False, (250, 170, 30)),
    Label("traffic sign",         20,   7, "object",       3, False, False, (220, 220, 0)),
    Label("vegetation",           21,   8, "nature",       4, False, False, (107, 142, 35)),
    Label("terrain",              22,   9, "nature",       4, False, False, (152, 251, 152)),
    Label("sky",                  23,  10, "sky",          5, False, False, (70, 130, 180)),
    Label("person",               24,  11, "human",        6, True,  False, (220, 20, 60)),
    Label("rider",                25,  12, "human",        6, True,  False, (255, 0, 0)),
    Label("car",                  26,  13, "vehicle",      7, True,  False, (0, 0, 142)),
    Label("truck",                27,  14, "vehicle",      7, True,  False, (0, 0, 70)),
    Label("bus",                  28,  15, "vehicle",      7, True,  False, (0, 60, 100)),
    Label("caravan",              29, 255, "vehicle",      7, True,  True,  (0, 0, 90)),
    Label("trailer",              30, 255, "vehicle",      7, True,  True,  (0, 0, 110)),
    Label("train",                31,  16, "vehicle",      7, True,  False, (0, 80, 100)),
    Label("motorcycle",           32,  17, "vehicle",      7, True,  False, (0, 0, 230)),
    Label("bicycle",              33,  18, "vehicle",      7, True,  False, (119, 11, 32)),
    Label("license plate",        -1,  -1, "vehicle",      7, False, True,  (0, 0, 142)),
)  # fmt: skip

LABEL_BY_NAME: Dict[str, Label] = {label.name: label for label in LABELS}
LABEL_BY_ID: Dict[int, Label] = {label.id: label for label in LABELS}

# The 19 evaluated classes in train-id order.
TRAIN_LABELS: Tuple[Label, ...] = tuple(
    sorted((lb for lb in LABELS if 0 <= lb.train_id < IGNORE_TRAIN_ID), key=lambda lb: lb.train_id)
)
TRAIN_CLASS_NAMES: Tuple[str, ...] = tuple(lb.name for lb in TRAIN_LABELS)

# The categories scored by the benchmark, in the order of their classes.
EVALUATED_CATEGORIES: Tuple[str, ...] = tuple(dict.fromkeys(lb.category for lb in TRAIN_LABELS))


def _build_train_palette() -> np.ndarray:
    """RGB colour per train id, [256, 3] uint8; ignore (255) and unused ids are black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in TRAIN_LABELS:
        palette[label.train_id] = label.color
    return palette


def _build_train_to_label_id() -> np.ndarray:
    """Lookup table train id -> Cityscapes label id, [256] uint8; ignore maps to 0 (unlabeled)."""
    table = np.zeros(256, dtype=np.uint8)
    for label in TRAIN_LABELS:
        table[label.train_id] = label.id
    return table


def _build_label_id_to_train() -> np.ndarray:
    """Lookup table Cityscapes label id -> train id, [256] uint8; unknown ids map to ignore."""
    table = np.full(256, IGNORE_TRAIN_ID, dtype=np.uint8)
    for label in LABELS:
        if label.id >= 0:
            table[label.id] = label.train_id if label.train_id >= 0 else IGNORE_TRAIN_ID
    return table


TRAIN_ID_PALETTE: np.ndarray = _build_train_palette()
TRAIN_ID_TO_LABEL_ID: np.ndarray = _build_train_to_label_id()
LABEL_ID_TO_TRAIN_ID: np.ndarray = _build_label_id_to_train()
for _table in (TRAIN_ID_PALETTE, TRAIN_ID_TO_LABEL_ID, LABEL_ID_TO_TRAIN_ID):
    _table.setflags(write=False)


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map a train-id image (uint8, 255 = ignore) to Cityscapes label ids (official result format)."""
    return TRAIN_ID_TO_LABEL_ID[np.asarray(train_ids, dtype=np.uint8)]


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes label-id image to train ids (uint8, 255 = ignore)."""
    return LABEL_ID_TO_TRAIN_ID[np.asarray(label_ids, dtype=np.uint8)]
