"""The reference: cityscapesscripts' ``evalPixelLevelSemanticLabeling``, run in-process and quietly.

For cross-checks (tests, ``benchmarks/eval_bench.py``); needs ``pip install cityscapesscripts`` and a numpy that
still has ``np.in1d`` (< 2.4). Its results come back in this package's schema (``Accumulator.result()``).
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional, Sequence

from cityscapes_seg_ros.labels import EVALUATED_CATEGORIES, TRAIN_LABELS


def _module():
    try:
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling
    except ImportError as exc:
        raise ImportError(f"the official evaluator needs cityscapesscripts ({exc})") from None
    return evalPixelLevelSemanticLabeling


def official_args(prediction_dir: Optional[Path] = None) -> SimpleNamespace:
    """The official script's settings, quiet, without writing its JSON file."""
    official = _module()
    return SimpleNamespace(
        evalInstLevelScore=True,
        evalPixelAccuracy=False,
        evalLabels=[],
        printRow=5,
        normalized=True,
        colorized=False,
        bold="",
        nocol="",
        JSONOutput=False,
        quiet=True,
        avgClassSize=dict(official.args.avgClassSize),
        predictionPath=str(prediction_dir) if prediction_dir else None,
        predictionWalk=None,
    )


def official_matches(gt_files: Sequence[Path], prediction_dir: Path) -> List[Path]:
    """The prediction the official ``getPrediction`` picks for each ground-truth file (SystemExit if none)."""
    official = _module()
    args = official_args(prediction_dir)
    with contextlib.redirect_stdout(io.StringIO()):
        return [Path(official.getPrediction(args, str(gt))) for gt in gt_files]


def official_scores(predictions: Sequence[Path], gt_label_files: Sequence[Path]) -> dict:
    """Score with the official code; returns this package's schema (NaN -> None)."""
    official = _module()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its np.in1d
        raw = official.evaluateImgLists(
            [str(p) for p in predictions], [str(p) for p in gt_label_files], official_args()
        )
    classes = {
        lb.name: {"iou": _value(raw["classScores"][lb.name]), "iiou": _value(raw["classInstScores"][lb.name])}
        for lb in TRAIN_LABELS
    }
    categories = {
        c: {"iou": _value(raw["categoryScores"][c]), "iiou": _value(raw["categoryInstScores"][c])}
        for c in EVALUATED_CATEGORIES
    }
    return {
        "classes": classes,
        "miou": _value(raw["averageScoreClasses"]),
        "iiou": _value(raw["averageScoreInstClasses"]),
        "categories": categories,
        "category_miou": _value(raw["averageScoreCategories"]),
        "category_iiou": _value(raw["averageScoreInstCategories"]),
    }


def _value(score: float) -> Optional[float]:
    return None if math.isnan(score) else float(score)
