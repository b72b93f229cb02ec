"""One scoring pass for both modes: the bag's ground truth read by stamp, each frame's mask from the store.

Masks are train ids (what the node publishes); they are scored as label ids by the evaluator's ``Accumulator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Set

from ..labels import train_ids_to_label_ids
from .bagio import GroundTruth, ReadProblem, iter_ground_truth
from .predictions import PredictionStore


@dataclass
class ScoreOutcome:
    accumulator: object  # evaluation.scoring.Accumulator
    scored: List[int] = field(default_factory=list)
    without_prediction: List[int] = field(default_factory=list)  # GT frames the mode gave no mask for
    ground_truth_stamps: Set[int] = field(default_factory=set)
    problems: List[str] = field(default_factory=list)


def score_predictions(
    bag: Path, label_topic: Optional[str], instance_topic: Optional[str], store: PredictionStore
) -> ScoreOutcome:
    """Feed every ground-truth frame that has a prediction into an Accumulator (``label_topic`` None: none)."""
    from ..evaluation.scoring import Accumulator

    outcome = ScoreOutcome(Accumulator())
    if label_topic is None:
        return outcome
    problem = ReadProblem()
    for frame in iter_ground_truth(bag, label_topic, instance_topic, problem):
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


def add_frame(outcome: ScoreOutcome, frame: GroundTruth, pred_label_ids) -> bool:
    """Score one frame through a scratch Accumulator, so a frame that fails leaves no partial counts.

    Unusable instance ids cost the frame its iIoU contribution only; an unusable label image skips it.
    """
    from ..evaluation.scoring import Accumulator

    attempts = (frame.instance_ids, None) if frame.instance_ids is not None else (None,)
    for instance_ids in attempts:
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
