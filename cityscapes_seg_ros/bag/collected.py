"""What either mode of ``evaluate`` collects before scoring: a mask per frame, keyed by header stamp, and timings.

Live (the node fed by a replay) and offline (the model run on the bag) are two ways to fill a ``Collected``;
scoring and the report do not know which one did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .predictions import PredictionStore


@dataclass
class FrameTiming:
    """When a frame's input went out and its output came back (time.monotonic_ns)."""

    published_ns: Optional[int] = None
    received_ns: Optional[int] = None


@dataclass
class Collected:
    image_stamps: List[int]  # the bag's camera frames (read or published), in order
    store: PredictionStore
    timings: Dict[int, FrameTiming] = field(default_factory=dict)  # live: end to end; offline: model only
    latency_kind: str = "end_to_end"
    unmatched_outputs: int = 0  # outputs whose stamp is no frame of the bag
    bad_frames: Dict[int, str] = field(default_factory=dict)  # stamp -> why the frame could not be decoded
    wall_sec: float = 0.0
    problems: List[str] = field(default_factory=list)
    details: Dict[str, object] = field(default_factory=dict)
