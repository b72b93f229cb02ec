"""Offline collection: the model run on every camera frame of the bag, no ROS transport."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from ..segmenter import build_predictor
from .bagio import ReadProblem, UniqueStamps, iter_images
from .collected import Collected, FrameTiming
from .evaluate_options import EvaluateOptions
from .predictions import PredictionStore


def collect_offline(bag: Path, image_topic: str, frame_count: int, options: EvaluateOptions) -> Collected:
    """Each frame's mask and the model's time on it; reading stops (and says why) where the bag breaks off."""
    predictor = build_predictor(options.model)
    collected = Collected([], PredictionStore(options.save_predictions), latency_kind="model")
    problem, started, stamps = ReadProblem(), time.monotonic(), UniqueStamps(bag, image_topic)
    frames = iter_images(bag, image_topic, problem)
    for stamp, image in tqdm(frames, total=frame_count, desc="segmenting", unit="frame"):
        stamps.add(stamp)
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
