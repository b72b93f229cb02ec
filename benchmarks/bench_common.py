"""What the benchmark scripts share: timing (one way to time a call, on the CPU or a CUDA device), the machine's
name for the printed tables, and short names of the registry's models (``t`` ... ``xl``, ``segformer-l``).

Torch is imported only where a CUDA device is timed, so torch-free benchmarks can use the timing too."""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

Call = Callable[[], object]


def is_cuda(device: Any) -> bool:
    return getattr(device, "type", device) == "cuda"


def call_ms(fn: Call, device: Any = None) -> float:
    """Milliseconds of one call of ``fn``: CUDA events on a CUDA device (its queued work included), else the wall clock."""
    if is_cuda(device):
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1e3


def times_ms(fn: Call, repeats: int, device: Any = None, warmup: int = 1) -> List[float]:
    """``repeats`` timings of ``fn`` in ms, after ``warmup`` untimed calls (ops loaded, caches filled)."""
    for _ in range(warmup):
        fn()
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)
    return [call_ms(fn, device) for _ in range(repeats)]


def median_ms(fn: Call, repeats: int, device: Any = None) -> float:
    return statistics.median(times_ms(fn, repeats, device))


def interleaved_medians_ms(fns: Sequence[Call], repeats: int, device: Any = None) -> List[float]:
    """Median ms of each of ``fns``, timed in turn within every repeat (so load from other processes on a shared
    machine falls on all of them alike), after one warm-up call of each."""
    for fn in fns:
        fn()
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, kept in zip(fns, times):
            kept.append(call_ms(fn, device))
    return [statistics.median(kept) for kept in times]


def device_name(device: Any = None) -> str:
    """The GPU's name, or the CPU's model name (with torch's thread count when torch is loaded)."""
    if is_cuda(device):
        import torch

        return torch.cuda.get_device_name(device)
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
    except OSError:
        lines = []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name:")), None)
    name = name or platform.processor() or platform.machine()
    if device is None:
        return name
    import torch

    return f"{name} ({torch.get_num_threads()} threads)"


def model_names(keys: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Short name -> registry name: ``t`` ... ``xl`` for UperNet trained on Cityscapes, ``segformer-l``,
    ``upernet-l-mapillary`` and so on for the others; only ``keys`` (in that order) when given."""
    from cityscapes_seg_ros.models import list_models

    names = {}
    for name in list_models():
        head, _, size, *_, training = name.split("_")
        if head == "upernet" and training == "cityscapes":
            names[size] = name
        else:
            names[f"{head}-{size}" + ("-mapillary" if head == "upernet" else "")] = name
    return names if keys is None else {key: names[key] for key in keys}
