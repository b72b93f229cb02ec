"""What a person reads: the official-style console table, a markdown report, an IoU bar chart and the
confusion matrix as PNGs, and the JSON scores; every file written atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

from ..image_io import write_atomic
from ..labels import LABEL_BY_NAME, TRAIN_LABELS

JSON_NAME = "results.json"
MARKDOWN_NAME = "report.md"
BAR_CHART_NAME = "iou_per_class.png"
CONFUSION_NAME = "confusion_matrix.png"


def _fraction(value: Optional[float]) -> str:
    return "  nan" if value is None else f"{value:>5.3f}"


def console_table(result: Mapping) -> str:
    """The tables of the official script: classes, then categories, IoU and nIoU as fractions."""
    lines: List[str] = []
    for title, scores, mean_iou, mean_iiou in (
        ("classes", result["classes"], result["miou"], result["iiou"]),
        ("categories", result["categories"], result["category_miou"], result["category_iiou"]),
    ):
        lines += [f"{title:<17}IoU      nIoU", "-" * 32]
        lines += [f"{name:<14}: {_fraction(s['iou'])}    {_fraction(s['iiou'])}" for name, s in scores.items()]
        lines += ["-" * 32, f"Score Average : {_fraction(mean_iou)}    {_fraction(mean_iiou)}", "-" * 32, ""]
    return "\n".join(lines)


def _percent(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def markdown_report(result: Mapping, details: Mapping[str, str], images: Optional[Mapping[str, str]] = None) -> str:
    """A markdown page: summary, per-class and per-category tables (percent), the plots when given."""
    lines = ["# Cityscapes evaluation", ""]
    lines += [f"- {key}: {value}" for key, value in details.items()]
    lines += [
        "",
        "| metric | value (%) |",
        "|---|---|",
        f"| mIoU (classes) | {_percent(result['miou'])} |",
        f"| iIoU (classes) | {_percent(result['iiou'])} |",
        f"| mIoU (categories) | {_percent(result['category_miou'])} |",
        f"| iIoU (categories) | {_percent(result['category_iiou'])} |",
        "",
    ]
    for title, scores in (("Classes", result["classes"]), ("Categories", result["categories"])):
        lines += [f"## {title}", "", "| name | IoU (%) | iIoU (%) |", "|---|---|---|"]
        lines += [f"| {name} | {_percent(s['iou'])} | {_percent(s['iiou'])} |" for name, s in scores.items()]
        lines.append("")
    for title, file_name in (images or {}).items():
        lines += [f"## {title}", "", f"![{title}]({file_name})", ""]
    lines.append(
        "Undefined scores (no ground truth and no false positives) are shown as –; averages skip them, "
        "as the official cityscapesScripts evaluator does."
    )
    return "\n".join(lines) + "\n"


def _figure(width: float, height: float):
    # The object-oriented API with the Agg canvas: no pyplot, no global backend, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    write_atomic(path, buffer.getvalue())


def plot_class_iou(result: Mapping, path: Path) -> None:
    """Horizontal bars of the class IoUs in the official colours, with the mIoU as a line."""
    names = list(result["classes"])
    values = [100 * (result["classes"][n]["iou"] or 0.0) for n in names]
    colors = [np.array(LABEL_BY_NAME[n].color) / 255 for n in names]
    figure = _figure(7, 6.5)
    axes = figure.add_subplot()
    bars = axes.barh(names, values, color=colors, edgecolor="black", linewidth=0.5)
    for bar, name, value in zip(bars, names, values, strict=True):
        text = "n/a" if result["classes"][name]["iou"] is None else f"{value:.1f}"
        axes.text(value + 1, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    if result["miou"] is not None:
        axes.axvline(100 * result["miou"], color="black", linestyle="--", label=f"mIoU {100 * result['miou']:.2f}")
        axes.legend(loc="lower right")
    axes.invert_yaxis()
    axes.set_xlim(0, 110)
    axes.set_xlabel("IoU (%)")
    axes.set_title("Cityscapes IoU per class")
    _save_png(figure, path)


def evaluated_confusion(confusion: np.ndarray) -> np.ndarray:
    """The 19 evaluated ground-truth rows; columns: the 19 classes, then 'other' (any other predicted id)."""
    ids = [label.id for label in TRAIN_LABELS]
    rows = confusion[ids].astype(np.float64)
    other = rows.sum(axis=1) - rows[:, ids].sum(axis=1)
    return np.concatenate([rows[:, ids], other[:, None]], axis=1)


def plot_confusion(confusion: np.ndarray, path: Path) -> None:
    """Row-normalised confusion matrix (each ground-truth class sums to 100 %)."""
    matrix = evaluated_confusion(confusion)
    totals = matrix.sum(axis=1, keepdims=True)
    percent = np.divide(100 * matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    names = [label.name for label in TRAIN_LABELS]
    figure = _figure(11, 9.5)
    axes = figure.add_subplot()
    image = axes.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    for row, col in zip(*np.nonzero(percent >= 0.5), strict=True):
        color = "white" if percent[row, col] > 60 else "black"
        axes.text(col, row, f"{percent[row, col]:.0f}", ha="center", va="center", fontsize=6, color=color)
    axes.set_xticks(range(len(names) + 1), names + ["other"], rotation=90)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("ground truth")
    axes.set_title("Confusion matrix (% of each ground-truth class)")
    figure.colorbar(image, ax=axes, fraction=0.046)
    _save_png(figure, path)


def write_json(result: Mapping, path: Path) -> None:
    write_atomic(path, (json.dumps(result, indent=2) + "\n").encode())


def write_reports(result: Mapping, confusion: np.ndarray, folder: Path, details: Mapping[str, str]) -> Dict[str, Path]:
    """report.md, iou_per_class.png and confusion_matrix.png in ``folder``; returns their paths."""
    paths = {
        "bar chart": folder / BAR_CHART_NAME,
        "confusion matrix": folder / CONFUSION_NAME,
        "report": folder / MARKDOWN_NAME,
    }
    plot_class_iou(result, paths["bar chart"])
    plot_confusion(confusion, paths["confusion matrix"])
    images = {"IoU per class": BAR_CHART_NAME, "Confusion matrix": CONFUSION_NAME}
    write_atomic(paths["report"], markdown_report(result, details, images).encode())
    return paths
