"""``cityscapes-seg-bag evaluate``: score the node (live) or the model (offline) on a bag's frames.

Both modes fill a ``PredictionStore`` keyed by header stamp; one scoring pass then reads the bag's
ground truth and feeds the evaluator's ``Accumulator`` (train ids converted to label ids), so the two
modes are scored by the same code on the same frames.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tqdm import tqdm

from ..labels import train_ids_to_label_ids
from ..model_options import ModelOptions, build_predictor, given_options
from .bagio import (
    DEFAULT_GT_INSTANCE_TOPIC,
    DEFAULT_GT_LABEL_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    IMAGE_TYPE,
    IMAGE_TYPES,
    BagError,
    BagSummary,
    ReadProblem,
    iter_ground_truth,
    iter_images,
    summarize,
)
from ..ros_contract.topics import compressed_topic
from .convert import FRAMES_METADATA_KEY
from .predictions import PredictionStore

log = logging.getLogger(__name__)


@dataclass
class EvaluateOptions:
    out: Optional[Path] = None
    image_topic: Optional[str] = None  # None: the default camera topic, raw or compressed
    label_topic: str = DEFAULT_GT_LABEL_TOPIC
    instance_topic: str = DEFAULT_GT_INSTANCE_TOPIC
    save_predictions: Optional[Path] = None
    offline: bool = False
    model: ModelOptions = field(default_factory=ModelOptions)
    model_given: List[str] = field(default_factory=list)  # the model options set by the user (live: passed to the node)
    params_file: Optional[Path] = None
    node_args: List[str] = field(default_factory=list)
    use_running_node: bool = False
    node_module: Optional[str] = None  # python -m MODULE; None: cityscapes_seg_ros.node
    record: Optional[Path] = None
    rate: float = 1.0
    ready_timeout: float = 300.0
    drain_timeout: float = 30.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "EvaluateOptions":
        names = set(cls.__dataclass_fields__) - {"model", "model_given"}
        return cls(**{k: v for k, v in vars(args).items() if k in names}, model=ModelOptions.from_args(args),
                   model_given=given_options(args))  # fmt: skip


@dataclass
class FrameTiming:
    """Live mode: when the input went out and the output came back (time.monotonic_ns)."""

    published_ns: Optional[int] = None
    received_ns: Optional[int] = None


@dataclass
class Collected:
    """What a mode produced before scoring."""

    image_stamps: List[int]  # the bag's camera frames (read or published), in order
    store: PredictionStore
    timings: Dict[int, FrameTiming] = field(default_factory=dict)  # live: end to end; offline: model only
    latency_kind: str = "end_to_end"
    unmatched_outputs: int = 0  # outputs whose stamp is no frame of the bag
    wall_sec: float = 0.0
    problems: List[str] = field(default_factory=list)
    details: Dict[str, object] = field(default_factory=dict)


def choose_image_topic(summary: BagSummary, requested: Optional[str]) -> str:
    if requested:
        summary.require(requested, IMAGE_TYPES, "camera image")
        return requested
    for candidate in (DEFAULT_IMAGE_TOPIC, compressed_topic(DEFAULT_IMAGE_TOPIC)):
        if candidate in summary.topics:
            return candidate
    images = [t.name for t in summary.topics.values() if t.msgtype in IMAGE_TYPES and "/gt/" not in t.name]
    if len(images) == 1:
        return images[0]
    held = ", ".join(f"{t.name} ({t.msgtype})" for t in summary.topics.values()) or "none"
    raise BagError(f"{summary.path}: cannot tell the camera topic (pass --image-topic); the bag holds: {held}")


def predict_offline(bag: Path, image_topic: str, summary: BagSummary, options: EvaluateOptions) -> Collected:
    """Run the model on every camera frame of the bag, no ROS transport."""
    predictor = build_predictor(options.model)
    collected = Collected([], PredictionStore(options.save_predictions), latency_kind="model")
    problem, started = ReadProblem(), time.monotonic()
    total = summary.topics[image_topic].count
    for stamp, image in tqdm(iter_images(bag, image_topic, problem), total=total, desc="segmenting", unit="frame"):
        collected.image_stamps.append(stamp)
        before = time.monotonic_ns()
        train_ids = predictor.predict(image).train_ids
        collected.timings[stamp] = FrameTiming(before, time.monotonic_ns())
        collected.store.put(stamp, train_ids)
    collected.wall_sec = time.monotonic() - started
    if problem.message:
        collected.problems.append(problem.message)
    collected.details["model"] = {**options.model.describe(), "device": str(predictor.device)}
    return collected


@dataclass
class ScoreOutcome:
    accumulator: object
    scored: List[int] = field(default_factory=list)
    without_prediction: List[int] = field(default_factory=list)  # GT frames the mode gave no mask for
    ground_truth_stamps: set = field(default_factory=set)
    problems: List[str] = field(default_factory=list)


def score_predictions(bag: Path, summary: BagSummary, options: EvaluateOptions, store: PredictionStore) -> ScoreOutcome:
    """Feed every ground-truth frame that has a prediction into an Accumulator."""
    from ..evaluation.scoring import Accumulator

    outcome = ScoreOutcome(Accumulator())
    if options.label_topic not in summary.topics:
        outcome.problems.append(f"no ground-truth topic {options.label_topic} in the bag: nothing scored")
        return outcome
    summary.require(options.label_topic, (IMAGE_TYPE,), "ground-truth label")
    instance_topic = options.instance_topic if options.instance_topic in summary.topics else None
    problem = ReadProblem()
    for frame in iter_ground_truth(bag, options.label_topic, instance_topic, problem):
        if frame.label_ids is None:
            continue  # an instance image without its labels: counted as a frame without GT
        outcome.ground_truth_stamps.add(frame.stamp_ns)
        train_ids = store.get(frame.stamp_ns)
        if train_ids is None:
            outcome.without_prediction.append(frame.stamp_ns)
            continue
        if add_frame(outcome, frame, train_ids_to_label_ids(train_ids)):
            outcome.scored.append(frame.stamp_ns)
    if problem.message:
        outcome.problems.append(problem.message)
    return outcome


def add_frame(outcome: ScoreOutcome, frame, pred_label_ids) -> bool:
    """Score one frame through a scratch Accumulator, so a frame that fails leaves no partial counts.

    Unusable instance ids cost the frame its iIoU contribution only; an unusable label image skips it.
    """
    from ..evaluation.scoring import Accumulator

    for instance_ids in ((frame.instance_ids, None) if frame.instance_ids is not None else (None,)):
        scratch = Accumulator()
        try:
            scratch.add(pred_label_ids, frame.label_ids, instance_ids)
        except ValueError as exc:
            what = "instance ids unusable, scored without them" if instance_ids is not None else "not scored"
            outcome.problems.append(f"frame {frame.stamp_ns}: {what}: {exc}")
            continue
        outcome.accumulator.merge(scratch)
        return True
    return False


def default_out_dir(bag: Path, offline: bool) -> Path:
    return bag.with_name(bag.name.rstrip("/") + ("_eval_offline" if offline else "_eval"))


def evaluate_bag(bag: Path, options: EvaluateOptions):
    """Run the chosen mode, score, write report.json, report.md and the plots; returns the Report."""
    from .report import build_report, write_report

    bag = Path(bag)
    options.out = Path(options.out or default_out_dir(bag, options.offline))
    summary = summarize(bag)
    image_topic = choose_image_topic(summary, options.image_topic)
    if options.offline:
        collected = predict_offline(bag, image_topic, summary, options)
    else:
        from .live import collect_live

        collected = collect_live(bag, image_topic, summary, options)
    outcome = score_predictions(bag, summary, options, collected.store)
    names = frame_names(summary)
    report = build_report(bag, "offline" if options.offline else "live", image_topic, collected, outcome, names)
    write_report(report, options.out)
    return report


def frame_names(summary: BagSummary) -> Dict[int, str]:
    """stamp -> source file, from the metadata ``from-cityscapes`` leaves in the bag (empty otherwise)."""
    import json

    try:
        return {int(k): v for k, v in json.loads(summary.custom.get(FRAMES_METADATA_KEY, "{}")).items()}
    except (ValueError, AttributeError):
        return {}

