"""Cityscapes file layout: ground truth and image discovery, and prediction matching as the official tool does.

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (+ _instanceIds.png)

A prediction matches a ground-truth file when its name is ``<city>_<seq>_<frame>*.png``, anywhere below the
prediction folder (``getPrediction`` of ``evalPixelLevelSemanticLabeling``); none or several is an error.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple, Union

from .scoring import ScorePair

PathLike = Union[str, Path]

GT_LABELS_SUFFIX = "_gtFine_labelIds.png"
GT_INSTANCES_SUFFIX = "_gtFine_instanceIds.png"
IMAGE_SUFFIX = "_leftImg8bit.png"
MAX_LISTED = 5  # problems listed by name in an error message; the rest are counted


class DatasetError(ValueError):
    """The files on disk do not form a valid Cityscapes split or prediction set."""


@dataclass(frozen=True)
class Sample:
    """One image of a split with its ground truth; ``relative`` is <city>/<file name>."""

    key: str  # <city>_<seq>_<frame>
    relative: Path
    image: Path
    gt_label_ids: Path
    gt_instance_ids: Path


def frame_key(file_name: str) -> str:
    """``aachen_000000_000019_gtFine_labelIds.png`` -> ``aachen_000000_000019`` (city, sequence, frame)."""
    parts = file_name.split("_")
    if len(parts) < 4:
        raise DatasetError(f"{file_name}: not a Cityscapes file name (<city>_<seq>_<frame>_<type>.png)")
    return "_".join(parts[:3])


def split_folder(root: PathLike, kind: str, split: str) -> Path:
    """<root>/<kind>/<split>, with a clear error naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder (expected the Cityscapes root holding {kind}/{split}/)")
    folder = root / kind / split
    if not folder.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DatasetError(
            f"{root}: no {kind}/{split}/ folder (the Cityscapes root holds gtFine/ and "
            f"leftImg8bit/; found: {', '.join(present) or 'nothing'})"
        )
    return folder


def find_ground_truth(root: PathLike, split: str = "val") -> List[Path]:
    """The official ground-truth list: <root>/gtFine/<split>/*/*_gtFine_labelIds.png, sorted."""
    folder = split_folder(root, "gtFine", split)
    files = sorted(folder.glob(f"*/*{GT_LABELS_SUFFIX}"))
    if not files:
        raise DatasetError(f"{folder}: no */*{GT_LABELS_SUFFIX} files")
    return files


def instance_file(gt_label_ids: Path) -> Path:
    return gt_label_ids.with_name(gt_label_ids.name[: -len(GT_LABELS_SUFFIX)] + GT_INSTANCES_SUFFIX)


def match_predictions(gt_files: Sequence[Path], prediction_dir: PathLike) -> List[ScorePair]:
    """Pair each ground-truth file with its one prediction ``<city>_<seq>_<frame>*.png`` below the folder."""
    prediction_dir = Path(prediction_dir)
    if not prediction_dir.is_dir():
        raise DatasetError(f"{prediction_dir}: no such prediction folder")
    names: List[Tuple[str, str]] = []  # (file name, folder), sorted by name for prefix search
    for folder, _, files in os.walk(prediction_dir):
        names.extend((name, folder) for name in files if name.endswith(".png"))
    names.sort()
    sorted_names = [name for name, _ in names]

    pairs, missing, ambiguous = [], [], []
    for gt in gt_files:
        key = frame_key(gt.name)
        start = bisect.bisect_left(sorted_names, key)
        found = []
        for name, folder in names[start:]:
            if not name.startswith(key):
                break
            found.append(Path(folder) / name)
        if not found:
            missing.append(gt)
        elif len(found) > 1:
            ambiguous.append(f"{gt.name}: {', '.join(str(p) for p in found[:MAX_LISTED])}")
        else:
            pairs.append(ScorePair(found[0], gt, instance_file(gt)))
    if missing:
        raise DatasetError(
            f"no prediction in {prediction_dir} for {len(missing)} of {len(gt_files)} ground-truth "
            f"files ({listing(f'{frame_key(p.name)}*.png' for p in missing)})"
        )
    if ambiguous:
        raise DatasetError(
            f"several predictions in {prediction_dir} match one ground-truth file ({listing(ambiguous)})"
        )
    require_instance_files(p.gt_instance_ids for p in pairs)
    return pairs


def find_samples(root: PathLike, split: str = "val") -> List[Sample]:
    """Every <root>/leftImg8bit/<split>/*/*_leftImg8bit.png with its ground truth; sorted.

    Images without ground truth, and ground truth without an image, are errors: the official score needs
    one prediction per ground-truth file.
    """
    image_folder = split_folder(root, "leftImg8bit", split)
    gt_folder = split_folder(root, "gtFine", split)
    images = sorted(image_folder.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DatasetError(f"{image_folder}: no */*{IMAGE_SUFFIX} images")
    gt_by_key: Dict[str, Path] = {frame_key(p.name): p for p in find_ground_truth(root, split)}
    samples, without_gt = [], []
    for image in images:
        key = frame_key(image.name)
        gt = gt_folder / image.parent.name / f"{key}{GT_LABELS_SUFFIX}"
        if gt_by_key.pop(key, None) is None or not gt.is_file():
            without_gt.append(str(image))
            continue
        relative = image.relative_to(image_folder)
        samples.append(Sample(key, relative, image, gt, instance_file(gt)))
    if without_gt:
        raise DatasetError(f"{len(without_gt)} images have no ground truth in {gt_folder} ({listing(without_gt)})")
    if gt_by_key:
        raise DatasetError(
            f"{len(gt_by_key)} ground-truth files have no image in {image_folder} "
            f"({listing(str(p) for p in gt_by_key.values())})"
        )
    require_instance_files(s.gt_instance_ids for s in samples)
    return samples


def find_images(root: PathLike, split: str = "val") -> List[Sample]:
    """Every <root>/leftImg8bit/<split>/*/*_leftImg8bit.png with where its ground truth belongs; sorted.

    Unlike ``find_samples`` the ground-truth files need not exist: for tools that can do without them.
    """
    image_folder = split_folder(root, "leftImg8bit", split)
    images = sorted(image_folder.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DatasetError(f"{image_folder}: no */*{IMAGE_SUFFIX} images")
    gt_folder = Path(root) / "gtFine" / split
    samples = []
    for image in images:
        key = frame_key(image.name)
        gt = gt_folder / image.parent.name / f"{key}{GT_LABELS_SUFFIX}"
        samples.append(Sample(key, image.relative_to(image_folder), image, gt, instance_file(gt)))
    return samples


def require_instance_files(instance_files: Iterable[Path]) -> None:
    """The iIoU needs every *_gtFine_instanceIds.png."""
    missing = [str(p) for p in instance_files if not p.is_file()]
    if missing:
        raise DatasetError(f"instance ground truth missing ({listing(missing)})")


def listing(items: Iterable[str]) -> str:
    """The first few items and a count of the rest, for error messages."""
    items = list(items)
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")
