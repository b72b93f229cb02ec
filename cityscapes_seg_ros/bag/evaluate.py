"""``cityscapes-seg-bag evaluate``: score the node (live) or the model (offline) on a bag's frames.

Everything that can be refused is refused before a model is loaded or a node started: the options, the bag's
topics and their types. Then one mode collects a mask per frame (``collect_offline`` or ``collect_live``, both
filling a ``Collected`` keyed by header stamp), one scoring pass reads the bag's ground truth
(``score_predictions``), and the report is written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..ros_contract.topics import compressed_topic
from .bagio import DEFAULT_IMAGE_TOPIC, FRAMES_METADATA_KEY, IMAGE_TYPE, IMAGE_TYPES, BagError, BagSummary, summarize
from .evaluate_options import EvaluateOptions
from .offline import collect_offline
from .report import Report, build_report, write_report
from .score import score_predictions

log = logging.getLogger(__name__)


def choose_image_topic(summary: BagSummary, requested: Optional[str]) -> str:
    if requested:
        summary.require(requested, IMAGE_TYPES, "camera image")
        return requested
    for candidate in (DEFAULT_IMAGE_TOPIC, compressed_topic(DEFAULT_IMAGE_TOPIC)):
        if candidate in summary.topics:
            return summary.require(candidate, IMAGE_TYPES, "camera image").name
    images = [t.name for t in summary.topics.values() if t.msgtype in IMAGE_TYPES and "/gt/" not in t.name]
    if len(images) == 1:
        return images[0]
    held = ", ".join(f"{t.name} ({t.msgtype})" for t in summary.topics.values()) or "none"
    raise BagError(f"{summary.path}: cannot tell the camera topic (pass --image-topic); the bag holds: {held}")


def ground_truth_topics(summary: BagSummary, options: EvaluateOptions) -> Tuple[Optional[str], Optional[str]]:
    """(label topic, instance topic), None for one the bag lacks; a BagError for one of the wrong type."""
    label = summary.require_type(options.label_topic, (IMAGE_TYPE,), "ground-truth label")
    instance = summary.require_type(options.instance_topic, (IMAGE_TYPE,), "ground-truth instance")
    if label is None:
        log.warning(
            "%s: no ground-truth topic %s: the frames will be segmented but not scored",
            summary.path,
            options.label_topic,
        )
    return (label.name if label else None), (instance.name if instance else None)


def default_out_dir(bag: Path, offline: bool) -> Path:
    return bag.with_name(bag.name.rstrip("/") + ("_eval_offline" if offline else "_eval"))


def evaluate_bag(bag: Path, options: EvaluateOptions) -> Report:
    """Run the chosen mode, score, write report.json, report.md and the plots; returns the Report."""
    options.check()
    bag = Path(bag)
    out = Path(options.out or default_out_dir(bag, options.offline))
    summary = summarize(bag)
    image_topic = choose_image_topic(summary, options.image_topic)
    label_topic, instance_topic = ground_truth_topics(summary, options)
    for note in summary.notes:
        log.warning("%s: %s", bag, note)
    if options.offline:
        collected = collect_offline(bag, image_topic, summary.topics[image_topic].count, options)
    else:
        from .live import collect_live

        collected = collect_live(bag, image_topic, summary, options, out)
    outcome = score_predictions(bag, label_topic, instance_topic, collected.store)
    if label_topic is None:
        outcome.problems.append(f"no ground-truth topic {options.label_topic} in the bag: nothing scored")
    report = build_report(
        bag,
        "offline" if options.offline else "live",
        image_topic,
        collected,
        outcome,
        frame_names(summary),
        summary.notes,
        summary.topics[image_topic].count,
    )
    write_report(report, out)
    return report


def frame_names(summary: BagSummary) -> Dict[int, str]:
    """stamp -> source file, from the metadata ``from-cityscapes`` leaves in the bag (empty otherwise)."""
    try:
        return {int(k): v for k, v in json.loads(summary.custom.get(FRAMES_METADATA_KEY, "{}")).items()}
    except (ValueError, AttributeError):
        return {}
