"""A network forward replayed as a CUDA graph: the kernel launches of one input shape captured once.

``GraphForward(forward)`` wraps a function of one tensor (the preprocessed network input) that returns one
tensor (the logits). The first time it sees a CUDA input of a new (shape, dtype, device), it warms the function
up on a side stream, captures one call into a ``torch.cuda.CUDAGraph`` reading a static input buffer, and from
then on copies each input into that buffer and replays the graph: the hundreds of launches of a network cost one
graph launch. Inputs on the CPU, calls while ``enabled`` is off, and new shapes once ``max_graphs`` are held run
the function eagerly. A shape whose capture fails (an op that waits for the host, ...) is logged once and runs
eagerly from then on.

What a captured function must do: the same device work on every call for a given input shape (no decisions on
tensor values on the host, nothing allocated in one call and kept for the next). The graphs of one wrapper share
one memory pool, which is safe because every call copies its output out of the graph before anything else can
replay (the returned tensor is the caller's), and because a wrapper is used by one thread at a time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import torch

log = logging.getLogger(__name__)

GraphKey = Tuple[Tuple[int, ...], torch.dtype, torch.device]
DEFAULT_MAX_GRAPHS = 4
WARMUP_CALLS = 2  # lazy initialisation (cuDNN/cuBLAS handles, autotuning) must not happen during the capture


@dataclass
class CapturedForward:
    graph: Any  # torch.cuda.CUDAGraph
    static_input: torch.Tensor
    static_output: torch.Tensor


class GraphForward:
    """``__call__(x) -> forward(x)``, replayed from a CUDA graph per input shape where it can be."""

    capture_device_type = "cuda"

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        enabled: bool = True,
        max_graphs: int = DEFAULT_MAX_GRAPHS,
    ) -> None:
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be at least 1, got {max_graphs}")
        self.forward = forward
        self.enabled = enabled
        self.max_graphs = max_graphs
        self.captures = 0  # graphs captured since construction (a cleared cache captures again)
        self.replays = 0
        self._graphs: Dict[GraphKey, CapturedForward] = {}
        self._eager: Set[GraphKey] = set()  # failed captures and shapes beyond max_graphs
        self._pool: Optional[Any] = None

    @property
    def held(self) -> int:
        """How many graphs are captured and kept."""
        return len(self._graphs)

    @property
    def graph_keys(self) -> List[GraphKey]:
        """(shape, dtype, device) of every graph held, in capture order."""
        return list(self._graphs)

    def uses_graph(self, x: torch.Tensor) -> bool:
        """Whether a call with ``x`` replays (or would capture) a graph rather than running eagerly."""
        key = graph_key(x)
        return (
            self.enabled
            and x.device.type == self.capture_device_type
            and key not in self._eager
            and (key in self._graphs or len(self._graphs) < self.max_graphs)
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled or x.device.type != self.capture_device_type:
            return self.forward(x)
        key = graph_key(x)
        captured = self._graphs.get(key)
        if captured is None and key not in self._eager:
            if len(self._graphs) < self.max_graphs:
                captured = self._capture(key, x)
            else:
                self._eager.add(key)
                log.info(
                    "%d CUDA graphs held (max_graphs): input %s %s runs eagerly",
                    len(self._graphs),
                    list(key[0]),
                    key[1],
                )
        if captured is None:
            return self.forward(x)
        captured.static_input.copy_(x)
        captured.graph.replay()
        self.replays += 1
        with torch.inference_mode():
            return captured.static_output.clone()

    def clear(self) -> None:
        """Drop every graph (their memory goes back to the allocator's cache) and forget failed shapes."""
        self._graphs.clear()
        self._eager.clear()
        self._pool = None

    def _capture(self, key: GraphKey, x: torch.Tensor) -> Optional[CapturedForward]:
        start = time.perf_counter()
        try:
            captured = self._capture_graph(x)
        except RuntimeError as exc:
            self._eager.add(key)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning(
                "CUDA graph capture for input %s %s failed; that shape runs eagerly: %s", list(key[0]), key[1], reason
            )
            return None
        self._graphs[key] = captured
        self.captures += 1
        log.info(
            "captured a CUDA graph for input %s %s in %.2f s (%d held)",
            list(key[0]),
            key[1],
            time.perf_counter() - start,
            len(self._graphs),
        )
        return captured

    def _capture_graph(self, x: torch.Tensor) -> CapturedForward:
        """Warm the forward up on a side stream, then capture one call reading a static copy of ``x``."""
        with torch.cuda.device(x.device):
            static_input = torch.empty_like(x).copy_(x)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_CALLS):
                    self.forward(static_input)
            torch.cuda.current_stream().wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            # thread_local: other threads of the process (a ROS executor) may use CUDA during the capture.
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                static_output = self.forward(static_input)
        if not isinstance(static_output, torch.Tensor):
            raise RuntimeError(f"the forward returned {type(static_output).__name__}, not a tensor")
        return CapturedForward(graph, static_input, static_output)


def graph_key(x: torch.Tensor) -> GraphKey:
    return tuple(x.shape), x.dtype, x.device
