"""Per-frame class statistics and the node's running figures (fps, latency percentiles, counters).

Imports without ROS; node.py turns these into ClassStatistics and DiagnosticArray messages.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..labels import IGNORE_TRAIN_ID, NUM_TRAIN_CLASSES, TRAIN_CLASS_NAMES
from ..ops.score_decode import label_histogram, tensor_label_histogram

Array = Union[np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class ClassStat:
    train_id: int
    name: str
    pixel_count: int
    fraction: float
    mean_confidence: float  # NaN when pixel_count is 0


def count_classes(train_ids: Array, confidence: Optional[Array] = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per label value (0..255) and the sum of confidence per value, as numpy [256] arrays.

    Runs where the data is (``ops.score_decode.tensor_label_histogram`` on a tensor's device, ``label_histogram``
    on numpy).
    """
    if isinstance(train_ids, torch.Tensor):
        counts, sums = tensor_label_histogram(train_ids, confidence)
        return counts.cpu().numpy(), sums.cpu().numpy()
    return label_histogram(train_ids, confidence)


def class_stats(
    counts: np.ndarray, confidence_sums: np.ndarray, class_ids: Optional[Sequence[int]] = None
) -> List[ClassStat]:
    """One ``ClassStat`` per reported class (all 19 when ``class_ids`` is None), in train-id order."""
    total = int(counts.sum())
    stats = []
    for train_id in range(NUM_TRAIN_CLASSES) if class_ids is None else sorted(class_ids):
        count = int(counts[train_id])
        mean = float(confidence_sums[train_id]) / count if count else math.nan
        stats.append(ClassStat(train_id, TRAIN_CLASS_NAMES[train_id], count, count / total if total else 0.0, mean))
    return stats


def ignored_count(counts: np.ndarray) -> int:
    return int(counts[IGNORE_TRAIN_ID])


class LatencyWindow:
    """The last ``size`` latencies (seconds) and frame completion times: percentiles and frames per second."""

    def __init__(self, size: int = 300, rate_window_s: float = 5.0) -> None:
        self._latencies: Deque[float] = deque(maxlen=size)
        self._done_at: Deque[float] = deque(maxlen=size)
        self._rate_window_s = rate_window_s
        self._lock = threading.Lock()

    def add(self, latency_s: float, now: Optional[float] = None) -> None:
        with self._lock:
            self._latencies.append(latency_s)
            self._done_at.append(time.monotonic() if now is None else now)

    def percentile_ms(self, q: float) -> float:
        with self._lock:
            values = list(self._latencies)
        return float(np.percentile(values, q) * 1e3) if values else math.nan

    def fps(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._done_at if now - t <= self._rate_window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


class BatchSizeWindow:
    """The sizes of the last ``size`` network batches a camera's frames went through: mean and largest."""

    def __init__(self, size: int = 300) -> None:
        self._sizes: Deque[int] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, batch_size: int) -> None:
        with self._lock:
            self._sizes.append(batch_size)

    def mean(self) -> float:
        with self._lock:
            return sum(self._sizes) / len(self._sizes) if self._sizes else math.nan

    def largest(self) -> int:
        with self._lock:
            return max(self._sizes, default=0)


@dataclass
class CameraCounters:
    """Counts of one camera's frames since start-up (updated by the callbacks and the worker)."""

    received: int = 0
    processed: int = 0
    dropped: int = 0  # replaced in the slot by a newer frame before the worker took them
    bad_inputs: int = 0
    failed: int = 0  # inference errors (out of memory, ...)
    skipped_unsubscribed: int = 0  # not segmented: no output of the camera had a subscriber (skip_unsubscribed)
    bad_input_kinds: Dict[str, int] = field(default_factory=dict)

    def add_bad_input(self, kind: str) -> None:
        self.bad_inputs += 1
        self.bad_input_kinds[kind] = self.bad_input_kinds.get(kind, 0) + 1
