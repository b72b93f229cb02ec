"""Per-frame class statistics and the node's running figures (fps, latency percentiles, counters).

Imports without ROS; node.py turns these into ClassStatistics and DiagnosticArray messages.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Mapping, Optional, Sequence, Union

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
    lost: int = 0  # published but never received (gaps in the publishers' sequence numbers)
    bad_inputs: int = 0
    failed: int = 0  # inference errors (out of memory, ...)
    skipped_unsubscribed: int = 0  # not segmented: no output of the camera had a subscriber (skip_unsubscribed)
    bad_input_kinds: Dict[str, int] = field(default_factory=dict)

    def add_bad_input(self, kind: str) -> None:
        self.bad_inputs += 1
        self.bad_input_kinds[kind] = self.bad_input_kinds.get(kind, 0) + 1


class RecentEvents:
    """Counts of a camera's events (frames received, bad, failed, dropped, lost) in the last ``window_s`` seconds.

    /diagnostics reports these recent figures beside the totals, so a problem that stopped clears from its level.
    """

    def __init__(self, window_s: float = 10.0, most: int = 100_000) -> None:
        self.window_s = window_s
        self._events: Deque[tuple[float, str, int]] = deque(maxlen=most)
        self._lock = threading.Lock()

    def add(self, kind: str, count: int = 1, now: Optional[float] = None) -> None:
        with self._lock:
            self._events.append((time.monotonic() if now is None else now, kind, count))

    def counts(self, now: Optional[float] = None) -> Dict[str, int]:
        now = time.monotonic() if now is None else now
        totals: Dict[str, int] = {}
        with self._lock:
            while self._events and now - self._events[0][0] > self.window_s:
                self._events.popleft()
            for _, kind, count in self._events:
                totals[kind] = totals.get(kind, 0) + count
        return totals


class SequenceGaps:
    """Messages a publisher sent that never reached the subscription callback: the gaps in each publisher's
    publication sequence numbers (rclpy's MessageInfo, where the middleware fills them in; Fast DDS does).

    Counting starts at the first message seen from a publisher; a number that goes back (a restarted publisher)
    starts it again.
    """

    MOST_PUBLISHERS = 64

    def __init__(self) -> None:
        self._last: Dict[Any, int] = {}
        self.known = False  # whether the middleware has told a sequence number yet

    def lost(self, info: Mapping[str, Any]) -> Optional[int]:
        """Messages lost before this one, or None when the middleware gives no sequence number."""
        number = info.get("publication_sequence_number")
        if number is None or number >= 2**63:  # rmw's "unsupported" is the largest uint64
            return None
        self.known = True
        gid = info.get("publisher_gid")
        publisher = bytes(gid.get("data", b"")) if isinstance(gid, Mapping) else None
        last = self._last.pop(publisher, None)
        self._last[publisher] = number
        if len(self._last) > self.MOST_PUBLISHERS:
            self._last.pop(next(iter(self._last)))
        return number - last - 1 if last is not None and number > last else 0


@dataclass(frozen=True)
class Health:
    """A camera's state on /diagnostics: ``level`` one of OK, WARN, STALE, with the reason."""

    level: str
    message: str


def camera_health(
    serving: bool, processed: int, silent_s: float, frame_timeout_s: float, recent: Mapping[str, int], window_s: float
) -> Health:
    """WARN after ``frame_timeout_s`` without a frame, STALE after twice that; WARN while bad inputs or failures
    were seen in the last ``window_s`` seconds; else OK."""
    if not serving:
        return Health("OK", "inactive")
    if silent_s >= frame_timeout_s:
        level = "STALE" if silent_s >= 2 * frame_timeout_s else "WARN"
        return Health(level, f"no frames for {silent_s:.1f} s")
    kinds = (("bad_input", "bad input"), ("failed", "failure"))
    problems = [f"{recent[kind]} {what}{'s' if recent[kind] > 1 else ''}" for kind, what in kinds if recent.get(kind)]
    if problems:
        return Health("WARN", f"{' and '.join(problems)} in the last {window_s:g} s")
    return Health("OK", "segmenting" if processed else "waiting for images")
