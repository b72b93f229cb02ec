"""Offline collection: the model run on every camera frame of the bag, no ROS transport."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm import tqdm

from ..ros_contract.image_codec import BadImageError
from ..segmenter import build_predictor
from .bagio import ReadProblem, UniqueStamps, iter_image_messages
from .collected import Collected, FrameTiming
from .evaluate_options import EvaluateOptions
from .predictions import PredictionStore

log = logging.getLogger(__name__)


def collect_offline(bag: Path, image_topic: str, frame_count: int, options: EvaluateOptions) -> Collected:
    """Each frame's mask and the model's time on it; reading stops (and says why) where the bag breaks off.

    A frame that cannot be decoded (an unknown encoding, a corrupt message) is a bad frame, as the node counts
    it: named by its stamp, not segmented, and the rest go on.
    """
    predictor = build_predictor(options.model)
    collected = Collected([], PredictionStore(options.save_predictions), latency_kind="model")
    problem, started, stamps = ReadProblem(), time.monotonic(), UniqueStamps(bag, image_topic)
    frames = iter_image_messages(bag, image_topic, problem)
    for stamp, decode in tqdm(frames, total=frame_count, desc="segmenting", unit="frame"):
        stamps.add(stamp)
        collected.image_stamps.append(stamp)
        try:
            image = decode()
        except BadImageError as exc:
            collected.bad_frames[stamp] = str(exc)
            log.debug("frame %d: bad input: %s", stamp, exc)
            continue
        before = time.monotonic_ns()
        train_ids = predictor.predict(image).train_ids
        collected.timings[stamp] = FrameTiming(before, time.monotonic_ns())
        collected.store.put(stamp, train_ids)
    collected.wall_sec = time.monotonic() - started
    if problem.message:
        collected.problems.append(problem.message)
    collected.details["model"] = {**options.model.describe(), "device": str(predictor.device)}
    return collected
