"""Frames to the GPU and results back through page-locked (pinned) host memory, with asynchronous copies.

``upload``: one copy of the numpy frame into a pinned buffer, then a non-blocking copy to the device (the copy
engine reads pinned memory directly; a copy from pageable memory is staged by the driver and holds the host).
``download``: every result copied into a pinned buffer of its own without waiting, then one synchronisation for
all of them; the numpy arrays are views of those buffers and keep them alive. The buffers come from torch's
caching host allocator, so after the first frames no memory is page-locked per frame. Tensors that are not on
a CUDA device take the plain path.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch


def upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` as a tensor on ``device``; on CUDA the copy may still be running when this returns (stream-ordered)."""
    if device.type != "cuda":
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)
    host = torch.empty(array.shape, dtype=torch.from_numpy(np.empty(0, array.dtype)).dtype, pin_memory=True)
    host.numpy()[...] = array
    return host.to(device, non_blocking=True)


def download(tensors: Sequence[Optional[torch.Tensor]]) -> List[Optional[np.ndarray]]:
    """Each tensor (None stays None) as a numpy array in host memory, after one wait for all the copies."""
    hosts: List[Optional[torch.Tensor]] = []
    waits = set()
    for tensor in tensors:
        if tensor is None or tensor.device.type != "cuda":
            hosts.append(None if tensor is None else tensor.cpu())
            continue
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        hosts.append(host)
        waits.add(tensor.device)
    for device in waits:
        torch.cuda.current_stream(device).synchronize()
    return [None if host is None else host.numpy() for host in hosts]
