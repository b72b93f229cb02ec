"""The bag evaluation's report: the Cityscapes evaluation report (tables, IoU chart, confusion matrix) of the
frames scored, with what a bag adds: frame counts, latency, throughput, and every shortfall.

Files in one folder: report.json, report.md, iou_per_class.png, confusion_matrix.png, latency.png.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..evaluation.report import (
    BAR_CHART_NAME,
    CONFUSION_NAME,
    MARKDOWN_NAME,
    console_table,
    markdown_report,
    plot_class_iou,
    plot_confusion,
)
from ..image_io import write_atomic
from .collected import Collected
from .score import ScoreOutcome

log = logging.getLogger(__name__)

JSON_NAME = "report.json"
LISTED = 10  # stamps named in a problem line; report.json lists them all
LATENCY_NAME = "latency.png"
LATENCY_KINDS = {"end_to_end": "end to end (output received - input published)", "model": "model only"}


@dataclass
class Report:
    data: dict
    problems: List[str] = field(default_factory=list)
    confusion: Optional[np.ndarray] = None  # of the scored frames; None when none was scored
    files: Dict[str, Path] = field(default_factory=dict)


def latency_summary(latencies_ms: List[float]) -> Optional[dict]:
    if not latencies_ms:
        return None
    values = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "count": int(values.size),
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
        "mean": float(values.mean()),
    }


def named(stamp: int, names: Dict[int, str]) -> str:
    return f"{stamp}" + (f" ({names[stamp]})" if stamp in names else "")


def listed(items: List[str]) -> str:
    more = f"; and {len(items) - LISTED} more (report.json)" if len(items) > LISTED else ""
    return ", ".join(items[:LISTED]) + more


def build_report(
    bag: Path,
    mode: str,
    image_topic: str,
    collected: Collected,
    outcome: ScoreOutcome,
    names: Dict[int, str],
    notes: Sequence[str] = (),
    expected_frames: Optional[int] = None,
) -> Report:
    """Counts, scores, latency and throughput of one run; every shortfall listed under ``problems``.

    ``expected_frames``: the camera's message count in the bag's metadata; frames it lists that could not be read
    (a corrupt chunk, a cut-off file) are counted as lost, by stamp where the bag names its frames.
    """
    stamps, store, bad = collected.image_stamps, collected.store, collected.bad_frames
    image_set = set(stamps)
    expected = max(expected_frames or 0, len(stamps))
    lost_stamps = sorted(s for s in names if s not in image_set)
    dropped = [s for s in stamps if s not in store and s not in bad]
    no_gt = [s for s in stamps if s in store and s not in outcome.ground_truth_stamps]
    per_frame, latencies = [], []
    for stamp in stamps:
        timing = collected.timings.get(stamp)
        latency = None
        if timing and timing.published_ns is not None and timing.received_ns is not None:
            latency = (timing.received_ns - timing.published_ns) / 1e6
            latencies.append(latency)
        per_frame.append(
            {
                "stamp_ns": stamp,
                "name": names.get(stamp),
                "latency_ms": latency,
                "predicted": stamp in store,
                "ground_truth": stamp in outcome.ground_truth_stamps,
                "bad_input": bad.get(stamp),
            }
        )
    received = [t.received_ns for t in collected.timings.values() if t.received_ns is not None]
    published = [t.published_ns for t in collected.timings.values() if t.published_ns is not None]
    span_sec = (max(received) - min(published)) / 1e9 if received and published else 0.0

    problems = list(collected.problems) + list(outcome.problems)
    if expected > len(stamps):
        which = f": stamps {listed([named(s, names) for s in lost_stamps])}" if lost_stamps else ""
        problems.append(
            f"{expected - len(stamps)} of the {expected} frames the bag lists could not be read "
            f"(corrupt or cut off){which}"
        )
    if bad:
        frames = [f"stamp {named(s, names)}: {why}" for s, why in bad.items()]
        problems.append(f"{len(bad)} bad frames (not segmented): {listed(frames)}")
    if dropped:
        problems.append(f"{len(dropped)} of {len(stamps)} frames got no prediction (dropped)")
    if no_gt:
        problems.append(f"{len(no_gt)} predicted frames have no ground truth in the bag (not scored)")
    if collected.unmatched_outputs:
        problems.append(f"{collected.unmatched_outputs} outputs matched no frame of the bag by stamp")
    if not outcome.scored:
        problems.append("no frame was scored")
    data = {
        "bag": str(bag),
        "mode": mode,
        "image_topic": image_topic,
        **collected.details,
        "frames": {
            "in_bag": expected,
            "images": len(stamps),
            "lost": expected - len(stamps),
            "bad": len(bad),
            "predicted": sum(1 for s in stamps if s in store),
            "with_ground_truth": len(outcome.ground_truth_stamps & image_set),
            "scored": len(outcome.scored),
            "dropped": len(dropped),
            "without_ground_truth": len(no_gt),
            "ground_truth_without_image": len(outcome.ground_truth_stamps - image_set),
            "unmatched_outputs": collected.unmatched_outputs,
            "duplicate_outputs": store.duplicates,
        },
        "scores": outcome.accumulator.result() if outcome.scored else None,
        "latency_kind": collected.latency_kind,
        "latency_ms": latency_summary(latencies),
        "throughput_fps": (len(received) / span_sec) if span_sec > 0 else None,
        "wall_sec": collected.wall_sec,
        "dropped_stamps": dropped,
        "lost_stamps": lost_stamps if expected > len(stamps) else [],
        "bad_frames": [{"stamp_ns": s, "name": names.get(s), "reason": why} for s, why in bad.items()],
        "problems": list(dict.fromkeys(problems)),  # each once: the images and the ground truth read one bag
        "notes": list(notes),
        "per_frame": per_frame,
    }
    return Report(data, data["problems"], outcome.accumulator.confusion if outcome.scored else None)


def fmt(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def run_rows(data: dict) -> List[tuple]:
    """(what, value) of the run: frame counts, latency, throughput."""
    frames, latency = data["frames"], data["latency_ms"]
    return [
        ("frames in bag (its metadata)", frames["in_bag"]),
        ("frames read", frames["images"]),
        ("lost (unreadable)", frames["lost"]),
        ("bad input (not segmented)", frames["bad"]),
        ("predicted", frames["predicted"]),
        ("scored (with ground truth)", frames["scored"]),
        ("dropped (no prediction)", frames["dropped"]),
        ("without ground truth", frames["without_ground_truth"]),
        ("outputs matching no frame", frames["unmatched_outputs"]),
        (
            f"latency p50 / p95 / max, ms ({LATENCY_KINDS[data['latency_kind']]})",
            " / ".join(fmt(latency[k]) for k in ("p50", "p95", "max")) if latency else "n/a",
        ),
        ("throughput, frames/s", fmt(data["throughput_fps"], 2)),
    ]


def markdown(data: dict, latency_chart: Optional[str]) -> str:
    """The evaluation report of the scored frames (when any), then the run: frames, latency, problems."""
    about = {"bag": f"`{data['bag']}`", "mode": data["mode"], "camera topic": f"`{data['image_topic']}`"}
    if "model" in data:
        about["model"] = ", ".join(f"{k} {v}" for k, v in data["model"].items())
    scores = data["scores"]
    if scores:
        charts = {"IoU per class": BAR_CHART_NAME, "Confusion matrix": CONFUSION_NAME}
        lines = [markdown_report(scores, about, charts).rstrip(), ""]
    else:
        lines = [f"# Bag evaluation ({data['mode']})", ""] + [f"- {k}: {v}" for k, v in about.items()] + [""]
    lines += ["## Frames and latency", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in run_rows(data)]
    lines.append("")
    if latency_chart:
        lines += [f"![latency]({latency_chart})", ""]
    for title, items in (("Problems", data["problems"]), ("Notes", data["notes"])):
        if items:
            lines += [f"## {title}", ""] + [f"- {item}" for item in items] + [""]
    return "\n".join(lines)


def console_text(data: dict) -> str:
    """What the command prints: the official tables (when frames were scored), then the run's figures."""
    width = max(len(k) for k, _ in run_rows(data))
    table = console_table(data["scores"]) if data["scores"] else ""
    return table + "\n".join(f"{k:<{width}} : {v}" for k, v in run_rows(data)) + "\n"


def plot_latency(data: dict, path: Path) -> bool:
    """Per-frame latency in bag order; False (nothing written) when no frame has one."""
    frames = [f for f in data["per_frame"] if f["latency_ms"] is not None]
    if not frames:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(range(len(frames)), [f["latency_ms"] for f in frames], marker=".", linewidth=1)
    axes.set_xlabel("frame (bag order)")
    axes.set_ylabel("latency, ms")
    axes.set_title(f"latency, {LATENCY_KINDS[data['latency_kind']]}")
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    write_atomic(path, buffer.getvalue())
    return True


def write_report(report: Report, out_dir: Path) -> None:
    """report.json, report.md and the charts in ``out_dir`` (each written whole); the tables on stdout."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / JSON_NAME, "markdown": out_dir / MARKDOWN_NAME}
    if report.data["scores"]:
        files["class_iou"], files["confusion"] = out_dir / BAR_CHART_NAME, out_dir / CONFUSION_NAME
        plot_class_iou(report.data["scores"], files["class_iou"])
        plot_confusion(report.confusion, files["confusion"])
    if plot_latency(report.data, out_dir / LATENCY_NAME):
        files["latency"] = out_dir / LATENCY_NAME
    write_atomic(files["json"], json.dumps(report.data, indent=2).encode("utf-8"))
    write_atomic(files["markdown"], markdown(report.data, LATENCY_NAME if "latency" in files else None).encode())
    report.files.update(files)
    print(console_text(report.data))
    for problem in report.problems:
        log.warning(problem)
    log.info("report written to %s", out_dir)
