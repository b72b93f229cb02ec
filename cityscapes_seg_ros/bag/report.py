"""The evaluation report: report.json, report.md, latency.png and class_iou.png in one folder."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..image_io import write_atomic

log = logging.getLogger(__name__)


@dataclass
class Report:
    data: dict
    problems: List[str] = field(default_factory=list)
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


def build_report(bag: Path, mode: str, image_topic: str, collected, outcome, names: Dict[int, str]) -> Report:
    """Counts, scores, latency and throughput of one run; every shortfall listed under ``problems``."""
    stamps = collected.image_stamps
    store = collected.store
    image_set = set(stamps)
    dropped = [s for s in stamps if s not in store]
    no_gt = [s for s in stamps if s in store and s not in outcome.ground_truth_stamps]
    per_frame, latencies = [], []
    for stamp in stamps:
        timing = collected.timings.get(stamp)
        latency = None
        if timing and timing.published_ns is not None and timing.received_ns is not None:
            latency = (timing.received_ns - timing.published_ns) / 1e6
            latencies.append(latency)
        per_frame.append({"stamp_ns": stamp, "name": names.get(stamp), "latency_ms": latency,
                          "predicted": stamp in store, "ground_truth": stamp in outcome.ground_truth_stamps})  # fmt: skip
    received = [t.received_ns for t in collected.timings.values() if t.received_ns is not None]
    published = [t.published_ns for t in collected.timings.values() if t.published_ns is not None]
    span_sec = (max(received) - min(published)) / 1e9 if received and published else 0.0

    problems = list(collected.problems) + list(outcome.problems)
    if dropped:
        problems.append(f"{len(dropped)} of {len(stamps)} frames got no prediction (dropped)")
    if no_gt:
        problems.append(f"{len(no_gt)} predicted frames have no ground truth in the bag (not scored)")
    if collected.unmatched_outputs:
        problems.append(f"{collected.unmatched_outputs} outputs matched no frame of the bag by stamp")
    if not outcome.scored:
        problems.append("no frame was scored")
    scores = outcome.accumulator.result() if outcome.scored else None
    data = {
        "bag": str(bag),
        "mode": mode,
        "image_topic": image_topic,
        **collected.details,
        "frames": {
            "images": len(stamps),
            "predicted": sum(1 for s in stamps if s in store),
            "with_ground_truth": len(outcome.ground_truth_stamps & image_set),
            "scored": len(outcome.scored),
            "dropped": len(dropped),
            "without_ground_truth": len(no_gt),
            "ground_truth_without_image": len(outcome.ground_truth_stamps - image_set),
            "unmatched_outputs": collected.unmatched_outputs,
            "duplicate_outputs": store.duplicates,
        },
        "scores": scores,
        "latency_kind": collected.latency_kind,
        "latency_ms": latency_summary(latencies),
        "throughput_fps": (len(received) / span_sec) if span_sec > 0 else None,
        "wall_sec": collected.wall_sec,
        "dropped_stamps": dropped,
        "problems": problems,
        "per_frame": per_frame,
    }
    return Report(data, problems)


def fmt(value: Optional[float], scale: float = 1.0, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def markdown(data: dict) -> str:
    frames, latency, scores = data["frames"], data["latency_ms"], data["scores"]
    kind = "end to end (output received - input published)" if data["latency_kind"] == "end_to_end" else "model only"
    lines = [
        f"# Bag evaluation ({data['mode']})",
        "",
        f"Bag `{data['bag']}`, camera topic `{data['image_topic']}`.",
        "",
        "| | |",
        "|---|---|",
        f"| frames in bag | {frames['images']} |",
        f"| predicted | {frames['predicted']} |",
        f"| scored (with ground truth) | {frames['scored']} |",
        f"| dropped (no prediction) | {frames['dropped']} |",
        f"| without ground truth | {frames['without_ground_truth']} |",
        f"| outputs matching no frame | {frames['unmatched_outputs']} |",
        f"| mIoU | {fmt(scores and scores['miou'], 100)} |",
        f"| iIoU | {fmt(scores and scores['iiou'], 100)} |",
        f"| latency p50 / p95 / max, ms ({kind}) | "
        + (" / ".join(fmt(latency[k], 1, 1) for k in ("p50", "p95", "max")) if latency else "n/a") + " |",
        f"| throughput, frames/s | {fmt(data['throughput_fps'])} |",
        "",
    ]
    if scores:
        lines += ["| class | IoU | iIoU |", "|---|---|---|"]
        lines += [f"| {name} | {fmt(s['iou'], 100)} | {fmt(s['iiou'], 100)} |" for name, s in scores["classes"].items()]
        lines.append("")
    if data["problems"]:
        lines += ["## Problems", ""] + [f"- {p}" for p in data["problems"]] + [""]
    return "\n".join(lines)


def plot(data: dict, out_dir: Path) -> Dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    files = {}
    frames = [f for f in data["per_frame"] if f["latency_ms"] is not None]
    if frames:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.plot(range(len(frames)), [f["latency_ms"] for f in frames], marker=".", linewidth=1)
        ax.set_xlabel("frame (bag order)")
        ax.set_ylabel("latency, ms")
        ax.set_title("end-to-end latency" if data["latency_kind"] == "end_to_end" else "model latency")
        ax.grid(alpha=0.3)
        files["latency"] = save_figure(fig, out_dir / "latency.png")
    if data["scores"]:
        classes = data["scores"]["classes"]
        fig, ax = plt.subplots(figsize=(8, 3.5))
        values = [100 * (s["iou"] or 0.0) for s in classes.values()]
        ax.bar(range(len(classes)), values, color="#4c72b0")
        ax.set_xticks(range(len(classes)), list(classes), rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("IoU, %")
        ax.set_ylim(0, 100)
        ax.set_title(f"per-class IoU (mIoU {fmt(data['scores']['miou'], 100)})")
        fig.tight_layout()
        files["class_iou"] = save_figure(fig, out_dir / "class_iou.png")
    return files


def save_figure(fig, path: Path) -> Path:
    from matplotlib import pyplot as plt

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(report: Report, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.files["json"] = out_dir / "report.json"
    write_atomic(report.files["json"], json.dumps(report.data, indent=2).encode("utf-8"))
    report.files["markdown"] = out_dir / "report.md"
    write_atomic(report.files["markdown"], markdown(report.data).encode("utf-8"))
    report.files.update(plot(report.data, out_dir))
    print(markdown(report.data))
    for problem in report.problems:
        log.warning(problem)
    log.info("report written to %s", out_dir)
