"""What frame rate to expect on this machine: a few seconds of measurement at a small size, scaled up.

The model (random weights: the time does not depend on them) runs at a small input on the device; the time
of the DCNv3 core calls is measured apart from the rest (the UperNet head and the backbone's dense layers).
Each part is scaled to the inference size: the rest by the ratio of the network's FLOPs at the two sizes
(counted on a meta-device copy, no memory used), the DCNv3 core by the ratio of sampled points (pixels). It
is an estimate of the network alone: small inputs run less efficiently than large ones (an overestimate of
the time, mostly on GPUs), and pre- and post-processing and ROS transport are not included.
"""

from __future__ import annotations

import logging
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, List, Tuple

from .choices import DEFAULT_INFERENCE_SIZE
from .options import DEFAULT_MODEL

log = logging.getLogger(__name__)

CPU_SIZE = (128, 256)  # (h, w) measured on a CPU: 1/64 of 1024x2048
CUDA_SIZE = (512, 1024)  # on a GPU, where small inputs are dominated by launch overheads


@dataclass(frozen=True)
class SpeedEstimate:
    model: str
    device: str
    measured_size: Tuple[int, int]  # (h, w)
    target_size: Tuple[int, int]  # (h, w)
    runs: int
    dcnv3_ms: float  # median per forward at measured_size
    rest_ms: float
    flops_ratio: float
    pixel_ratio: float

    @property
    def estimated_ms(self) -> float:
        return self.rest_ms * self.flops_ratio + self.dcnv3_ms * self.pixel_ratio

    @property
    def estimated_fps(self) -> float:
        return 1000.0 / self.estimated_ms

    def as_dict(self) -> Dict[str, object]:
        return {**asdict(self), "estimated_ms": self.estimated_ms, "estimated_fps": self.estimated_fps}


def target_input_size(img_scale: Tuple[int, int] = DEFAULT_INFERENCE_SIZE, frame: Tuple[int, int] = (1024, 2048)):
    """(h, w) the network sees for a ``frame`` (h, w) under the keep-ratio resize into ``img_scale``."""
    long_edge, short_edge = max(img_scale), min(img_scale)
    scale = min(long_edge / max(frame), short_edge / min(frame))
    return int(frame[0] * scale + 0.5), int(frame[1] * scale + 0.5)


def estimate_speed(model: str = DEFAULT_MODEL, device: str = "auto", budget_sec: float = 3.0) -> SpeedEstimate:
    """Measure ``model`` for about ``budget_sec`` seconds (after one warm-up run) and scale to the default size."""
    import torch

    from .builder import build_segmentor
    from .devices import resolve_device

    torch_device = resolve_device(device)
    size = CUDA_SIZE if torch_device.type == "cuda" else CPU_SIZE
    target = target_input_size()
    builder_log = logging.getLogger("cityscapes_seg_ros.segmenter.builder")
    level = builder_log.level
    builder_log.setLevel(logging.ERROR)  # "built with random weights" is the point here, not a warning
    try:
        network = build_segmentor(model, None, str(torch_device)).eval()
    finally:
        builder_log.setLevel(level)
    x = torch.randn(1, 3, *size, device=torch_device)
    totals: List[float] = []
    runs: List[Tuple[float, float]] = []

    def synchronize() -> None:
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)

    with torch.inference_mode(), timed_dcnv3(totals, synchronize):
        started = time.perf_counter()
        while not runs or time.perf_counter() - started < budget_sec:
            totals.clear()
            synchronize()
            begin = time.perf_counter()
            network(x)
            synchronize()
            runs.append((time.perf_counter() - begin, sum(totals)))
    measured = runs[1:] or runs  # the first run is the warm-up
    total_ms = statistics.median(r[0] for r in measured) * 1000
    core_ms = min(statistics.median(r[1] for r in measured) * 1000, total_ms)
    return SpeedEstimate(
        model=model,
        device=str(torch_device),
        measured_size=size,
        target_size=target,
        runs=len(measured),
        dcnv3_ms=core_ms,
        rest_ms=total_ms - core_ms,
        flops_ratio=network_flops(model, target) / network_flops(model, size),
        pixel_ratio=target[0] * target[1] / (size[0] * size[1]),
    )


def network_flops(model: str, size: Tuple[int, int]) -> float:
    """FLOPs of one forward at ``size`` (h, w), counted on a meta-device copy (convolutions and matmuls)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..models import EncoderDecoder, get_model_config

    with torch.device("meta"):
        network = EncoderDecoder(get_model_config(model)).eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        network(torch.empty(1, 3, *size, device="meta"))
    return float(counter.get_total_flops())


@contextmanager
def timed_dcnv3(totals: List[float], synchronize) -> Iterator[None]:
    """Meanwhile every DCNv3 core call of the model adds its time to ``totals``."""
    from ..models import dcnv3 as dcnv3_module

    original = dcnv3_module.ops.dcnv3

    def timed(*args, **kwargs):
        synchronize()
        begin = time.perf_counter()
        out = original(*args, **kwargs)
        synchronize()
        totals.append(time.perf_counter() - begin)
        return out

    dcnv3_module.ops.dcnv3 = timed
    try:
        yield
    finally:
        dcnv3_module.ops.dcnv3 = original
