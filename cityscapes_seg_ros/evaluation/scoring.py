"""Cityscapes pixel-level scores (IoU, iIoU, categories) with the official benchmark's definitions.

The numbers are those of ``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling``:

* one confusion matrix over all label ids 0..33 (ground truth rows, prediction columns), every pixel counted;
* class IoU = TP / (TP + FP + FN) where FN is the whole row minus TP (a prediction of an ignored id on an
  evaluated pixel is a miss) and FP counts only rows of evaluated classes;
* iIoU: TP and FN of each ground-truth instance (instance id > 1000) weighted by the class's average
  instance size / the instance's size; FP as for the IoU, unweighted;
* categories likewise over the label ids of a category; averages skip NaN scores.

Computed with bincounts instead of per-label loops, and over files in several processes when that pays
(``score_files``, ``parallel``).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from ..labels import LABEL_BY_ID, LABELS, TRAIN_LABELS
from .label_png import GREY_COLOR_TYPE, PNG_SIGNATURE, decode_grey_png
from .parallel import helpers_worth_starting, share_work

PathLike = Union[str, Path]

NUM_LABEL_IDS = max(label.id for label in LABELS) + 1  # 34: the official matrix covers ids 0..33
FLOAT32_EXACT_LIMIT = 2**24  # integers up to this are exact in float32
INSTANCE_ID_OFFSET = 1000  # instance ids are label_id * 1000 + index; smaller values are not instances
TIMED_IMAGES = 2  # scored here first; the faster one estimates the work left (the first may pay one-off costs)

# The official average instance size per class (pixels), the weights of the iIoU.
AVERAGE_INSTANCE_SIZE: Dict[str, float] = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}

EVALUATED_IDS: Tuple[int, ...] = tuple(label.id for label in TRAIN_LABELS)
INSTANCE_CLASS_IDS: Tuple[int, ...] = tuple(label.id for label in TRAIN_LABELS if label.has_instances)


def _category_label_ids() -> Dict[str, Tuple[int, ...]]:
    """Evaluated label ids per category, for the categories that hold an evaluated class."""
    by_category: Dict[str, List[int]] = {}
    for label in TRAIN_LABELS:
        by_category.setdefault(label.category, []).append(label.id)
    return {category: tuple(ids) for category, ids in by_category.items()}


def _instance_category_label_ids() -> Dict[str, Tuple[int, ...]]:
    """Categories whose labels all have instances (human, vehicle), with all their label ids.

    As in the official code the ids include the ignored instance classes (caravan, trailer): predicting
    them counts as a hit for the category.
    """
    result = {}
    for category in CATEGORY_LABEL_IDS:
        members = [label for label in LABELS if label.category == category and label.id >= 0]
        if all(label.has_instances for label in members):
            result[category] = tuple(label.id for label in members)
    return result


CATEGORY_LABEL_IDS = _category_label_ids()
INSTANCE_CATEGORY_LABEL_IDS = _instance_category_label_ids()
INSTANCE_CATEGORIES: Tuple[str, ...] = tuple(INSTANCE_CATEGORY_LABEL_IDS)


def _category_hit_table() -> np.ndarray:
    """[label id, predicted id] -> True when the prediction lies in the label's instance category."""
    table = np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS), dtype=bool)
    for ids in INSTANCE_CATEGORY_LABEL_IDS.values():
        table[np.ix_(ids, ids)] = True
    return table


CATEGORY_HIT = _category_hit_table()
# Row in the instance statistics per label id: the instance class, or -1 (not scored: ignored or no instances).
INSTANCE_ROW = np.full(NUM_LABEL_IDS, -1, dtype=np.int64)
INSTANCE_ROW[list(INSTANCE_CLASS_IDS)] = np.arange(len(INSTANCE_CLASS_IDS))
CATEGORY_ROW = np.full(NUM_LABEL_IDS, -1, dtype=np.int64)
for _row, _ids in enumerate(INSTANCE_CATEGORY_LABEL_IDS.values()):
    CATEGORY_ROW[list(_ids)] = _row
WEIGHT_BY_ID = np.zeros(NUM_LABEL_IDS, dtype=np.float64)
for _id in INSTANCE_CLASS_IDS:
    WEIGHT_BY_ID[_id] = AVERAGE_INSTANCE_SIZE[LABEL_BY_ID[_id].name]


class ScorePair(NamedTuple):
    """One image to score: prediction and ground truth files (the official result format)."""

    prediction: Path  # label-id PNG
    gt_label_ids: Path  # *_gtFine_labelIds.png
    gt_instance_ids: Optional[Path]  # *_gtFine_instanceIds.png; None skips the iIoU for this image


class Accumulator:
    """Sums the confusion matrix and the instance-weighted counts over images; ``result()`` scores them."""

    def __init__(self) -> None:
        self.confusion = np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS), dtype=np.int64)
        # Instance-weighted true positives and false negatives: per instance class and per instance category.
        self.class_tp_weighted = np.zeros(len(INSTANCE_CLASS_IDS))
        self.class_fn_weighted = np.zeros(len(INSTANCE_CLASS_IDS))
        self.category_tp_weighted = np.zeros(len(INSTANCE_CATEGORIES))
        self.category_fn_weighted = np.zeros(len(INSTANCE_CATEGORIES))
        self.images = 0

    def add(
        self, pred_label_ids: np.ndarray, gt_label_ids: np.ndarray, gt_instance_ids: Optional[np.ndarray] = None
    ) -> None:
        """Add one image: label-id prediction and ground truth [H, W], instance ids [H, W] if known."""
        pred = _check_label_image(pred_label_ids, "prediction")
        gt = _check_label_image(gt_label_ids, "ground truth")
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
        counts = confusion_counts(gt, pred)
        # Everything is computed (and checked) before anything is added: a bad image leaves no trace.
        instance_counts = None if gt_instance_ids is None else _instance_counts(pred, np.asarray(gt_instance_ids))
        self.confusion += counts
        if instance_counts is not None:
            class_tp, class_fn, category_tp, category_fn = instance_counts
            self.class_tp_weighted += class_tp
            self.class_fn_weighted += class_fn
            self.category_tp_weighted += category_tp
            self.category_fn_weighted += category_fn
        self.images += 1

    def merge(self, other: Accumulator) -> None:
        """Add another accumulator's counts (e.g. from another process or another data set part)."""
        self.confusion += other.confusion
        self.class_tp_weighted += other.class_tp_weighted
        self.class_fn_weighted += other.class_fn_weighted
        self.category_tp_weighted += other.category_tp_weighted
        self.category_fn_weighted += other.category_fn_weighted
        self.images += other.images

    def result(self) -> dict:
        """The scores: classes and categories with IoU and iIoU (None where undefined), and their means."""
        classes = {}
        for label in TRAIN_LABELS:
            false_positives = self._false_positives((label.id,), (label.id,))
            iou = self._iou((label.id,), false_positives)
            iiou = None
            if label.has_instances:
                row = INSTANCE_ROW[label.id]
                iiou = _ratio(self.class_tp_weighted[row], false_positives, self.class_fn_weighted[row])
            classes[label.name] = {"iou": iou, "iiou": iiou}
        categories = {}
        for category, ids in CATEGORY_LABEL_IDS.items():
            iou = self._iou(ids, self._false_positives(ids, ids))
            iiou = None
            if category in INSTANCE_CATEGORY_LABEL_IDS:
                row = INSTANCE_CATEGORIES.index(category)
                false_positives = self._false_positives(ids, INSTANCE_CATEGORY_LABEL_IDS[category])
                iiou = _ratio(self.category_tp_weighted[row], false_positives, self.category_fn_weighted[row])
            categories[category] = {"iou": iou, "iiou": iiou}
        return {
            "classes": classes,
            "miou": _mean(score["iou"] for score in classes.values()),
            "iiou": _mean(score["iiou"] for score in classes.values()),
            "categories": categories,
            "category_miou": _mean(score["iou"] for score in categories.values()),
            "category_iiou": _mean(score["iiou"] for score in categories.values()),
        }

    def _iou(self, ids: Sequence[int], false_positives: int) -> Optional[float]:
        index = np.asarray(ids)
        true_positives = int(self.confusion[np.ix_(index, index)].sum())
        false_negatives = int(self.confusion[index].sum()) - true_positives
        return _ratio(true_positives, false_positives, false_negatives)

    def _false_positives(self, own_ids: Sequence[int], predicted_ids: Sequence[int]) -> int:
        """Pixels predicted as ``predicted_ids`` whose ground truth is an evaluated class outside ``own_ids``."""
        others = [i for i in EVALUATED_IDS if i not in own_ids]
        return int(self.confusion[np.ix_(others, list(predicted_ids))].sum())


def confusion_counts(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """[34, 34] int64 pixel counts of (ground truth id, predicted id) for uint8 ids 0..33."""
    if gt.size == 0:
        return np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS), dtype=np.int64)
    if gt.size < FLOAT32_EXACT_LIMIT:  # OpenCV's histogram is faster, and exact while counts fit a float32
        ranges = [0, NUM_LABEL_IDS, 0, NUM_LABEL_IDS]
        gt, pred = np.ascontiguousarray(gt), np.ascontiguousarray(pred)
        histogram = cv2.calcHist([gt, pred], [0, 1], None, [NUM_LABEL_IDS, NUM_LABEL_IDS], ranges)
        return histogram.astype(np.int64)
    codes = gt.astype(np.uint16) * NUM_LABEL_IDS + pred
    return np.bincount(codes.ravel(), minlength=NUM_LABEL_IDS * NUM_LABEL_IDS).reshape(NUM_LABEL_IDS, NUM_LABEL_IDS)


def _instance_counts(pred: np.ndarray, instance_ids: np.ndarray) -> Tuple[np.ndarray, ...]:
    """Instance-weighted TP and FN per instance class and per instance category, for one image.

    One bincount over (instance id, predicted id) of the instance pixels gives every instance's size and its
    predicted ids.
    """
    if instance_ids.shape != pred.shape:
        raise ValueError(f"instance ids {instance_ids.shape} and prediction {pred.shape} differ in size")
    classes, categories = len(INSTANCE_CLASS_IDS), len(INSTANCE_CATEGORIES)
    highest = int(instance_ids.max()) if instance_ids.size else 0
    if highest <= INSTANCE_ID_OFFSET:
        return np.zeros(classes), np.zeros(classes), np.zeros(categories), np.zeros(categories)
    if highest // INSTANCE_ID_OFFSET >= NUM_LABEL_IDS:
        raise ValueError(f"instance id {highest} names label id {highest // INSTANCE_ID_OFFSET}, which does not exist")
    first = INSTANCE_ID_OFFSET + 1  # smaller ids (bare label ids, crowd regions, negatives) are no instances
    in_instance = instance_ids >= first
    codes = (instance_ids[in_instance] - first).astype(np.uint32) * NUM_LABEL_IDS + pred[in_instance]
    histogram = np.bincount(codes, minlength=(highest - first + 1) * NUM_LABEL_IDS).reshape(-1, NUM_LABEL_IDS)
    instances = np.flatnonzero(histogram.sum(axis=1)) + first
    instance_labels = instances // INSTANCE_ID_OFFSET
    _check_instance_labels(instance_labels)
    rows = INSTANCE_ROW[instance_labels]
    scored = rows >= 0  # caravan and trailer instances are ignored, as officially
    instances, instance_labels, rows = instances[scored], instance_labels[scored], rows[scored]
    predicted = histogram[instances - first]  # [instance, predicted id] pixel counts
    size = predicted.sum(axis=1).astype(np.float64)
    class_hits = predicted[np.arange(len(instances)), instance_labels]
    category_hits = (predicted * CATEGORY_HIT[instance_labels]).sum(axis=1)
    weight = WEIGHT_BY_ID[instance_labels] / size
    category_rows = CATEGORY_ROW[instance_labels]
    return (
        np.bincount(rows, class_hits * weight, minlength=classes),
        np.bincount(rows, (size - class_hits) * weight, minlength=classes),
        np.bincount(category_rows, category_hits * weight, minlength=categories),
        np.bincount(category_rows, (size - category_hits) * weight, minlength=categories),
    )


def _ratio(true_positives: float, false_positives: float, false_negatives: float) -> Optional[float]:
    denominator = true_positives + false_positives + false_negatives
    return float(true_positives) / float(denominator) if denominator > 0 else None


def _mean(scores: Iterable[Optional[float]]) -> Optional[float]:
    valid = [s for s in scores if s is not None and not math.isnan(s)]
    return sum(valid) / len(valid) if valid else None


def _check_label_image(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == bool:  # a 1-bit PNG: ids 0 and 1, as the official evaluator reads it
        image = image.astype(np.uint8)
    if image.ndim != 2:
        raise ValueError(f"{what} must be a single-channel label-id image [H, W], got shape {image.shape}")
    if image.dtype.kind not in "ui":
        raise ValueError(f"{what} must hold integer label ids, got dtype {image.dtype}")
    if image.size:
        lowest = 0 if image.dtype.kind == "u" else int(image.min())
        highest = int(image.max())
        if lowest < 0 or highest >= NUM_LABEL_IDS:
            bad = lowest if lowest < 0 else highest
            raise ValueError(f"{what} holds label id {bad}; Cityscapes label ids are 0..{NUM_LABEL_IDS - 1}")
    return image.astype(np.uint8, copy=False)


def _check_instance_labels(instance_labels: np.ndarray) -> None:
    """Instances of evaluated classes without instances (e.g. road 7001) are malformed ground truth."""
    for label_id in np.unique(instance_labels):
        label = LABEL_BY_ID[int(label_id)]
        if not label.ignore_in_eval and not label.has_instances:
            raise ValueError(
                f"instance id {int(label_id) * INSTANCE_ID_OFFSET + 1}.. names class {label.name}, "
                "which has no instances"
            )


def read_label_image(path: PathLike) -> np.ndarray:
    """A label-id or instance-id PNG as the official evaluator reads it (with PIL).

    Plain 8- and 16-bit grey PNGs (the official formats) are decoded by ``label_png`` (libdeflate and the
    compiled unfilter), other grey PNGs by OpenCV, which give the same array faster; anything else (palette
    PNGs give their indices, as in PIL) by PIL.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from None
    image = decode_grey_png(data)
    if image is not None:
        return image
    is_png = len(data) >= 26 and data.startswith(PNG_SIGNATURE)
    if is_png and data[24] in (8, 16) and data[25] == GREY_COLOR_TYPE:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is not None and image.ndim == 2:
            return image
    return _read_with_pil(path)


def _read_with_pil(path: PathLike) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.array(image)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from None


def accumulate_pair(pair: ScorePair) -> Accumulator:
    """Score one prediction file against its ground truth files."""
    accumulator = Accumulator()
    prediction = read_label_image(pair.prediction)
    gt_labels = read_label_image(pair.gt_label_ids)
    gt_instances = read_label_image(pair.gt_instance_ids) if pair.gt_instance_ids is not None else None
    try:
        accumulator.add(prediction, gt_labels, gt_instances)
    except ValueError as exc:
        raise ValueError(f"{pair.prediction} vs {pair.gt_label_ids}: {exc}") from None
    return accumulator


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def accumulate_files(
    pairs: Sequence[Union[ScorePair, Tuple]], workers: Optional[int] = None, progress: bool = True
) -> Accumulator:
    """Sum the counts of many (prediction, gt labelIds, gt instanceIds) files, in up to ``workers`` processes.

    This process scores the first images and times them; helper processes (``parallel``) are started only
    when the rest of the work pays for their start, and this process keeps scoring beside them.
    """
    todo = deque(ScorePair(*pair) for pair in pairs)
    workers = max(1, min(workers or default_workers(), len(todo)))
    total = Accumulator()
    with tqdm(total=len(todo), desc="scoring", unit="img", disable=not progress) as bar:
        fastest = math.inf
        for _ in range(min(TIMED_IMAGES, len(todo))):
            start = time.perf_counter()
            total.merge(accumulate_pair(todo.popleft()))
            fastest = min(fastest, time.perf_counter() - start)
            bar.update()
        helpers = helpers_worth_starting(len(todo), fastest, workers)
        if helpers:
            share_work(todo, accumulate_pair, total.merge, helpers, bar.update)
        while todo:
            total.merge(accumulate_pair(todo.popleft()))
            bar.update()
    return total


def score_files(pairs: Sequence[Union[ScorePair, Tuple]], workers: Optional[int] = None, progress: bool = True) -> dict:
    """Scores (``Accumulator.result()``) of many prediction / ground-truth file pairs."""
    return accumulate_files(pairs, workers, progress).result()
