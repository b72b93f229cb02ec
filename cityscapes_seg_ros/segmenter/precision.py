"""Inference precisions: what each of ``choices.PRECISIONS`` computes in, as one scoped context.

- ``fp32``: fp32 everywhere; on CUDA, TF32 switched off for the scope (PyTorch lets cuDNN use TF32 by default).
- ``tf32``: fp32 storage, TF32 tensor-core matmuls and convolutions on CUDA; on the CPU exactly ``fp32``.
- ``fp16`` / ``bf16``: autocast. Convolutions and linears (and the DCNv3 core, which accumulates in fp32) run in
  the low precision; the model keeps its numerically sensitive parts in fp32 by itself: every LayerNorm
  (``models.layers.FloatLayerNorm``), the residual stream (the layer-scale gammas are fp32), the classifier
  (``models.layers.float_island``), the final resize and the class decision. On CUDA autocast also runs the
  DCNv3 mask softmax in fp32; the CPU softmax accumulates in fp32 and only rounds its result, which the
  low-precision core takes anyway.

Autocast rather than converting the weights (``model.half()``): the residual stream of InternImage's 20-odd
blocks would then accumulate in the low precision, and the caller's model would be changed or copied. The
weight casts autocast repeats per forward are one pass over the weights (under 1 ms on a GPU); CUDA graphs
and ``torch.compile`` remove the launch overhead of the activation casts.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import ContextManager, Dict, Iterator

import torch

from .choices import PRECISIONS as PRECISION_NAMES

DTYPES: Dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}  # keys: choices.PRECISIONS
assert tuple(DTYPES) == PRECISION_NAMES, "choices.PRECISIONS and precision.DTYPES disagree"


def check_precision(precision: str) -> str:
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(DTYPES)}")
    return precision


def is_low_precision(precision: str) -> bool:
    """True for the autocast precisions (fp16, bf16)."""
    return DTYPES[check_precision(precision)] != torch.float32


@contextmanager
def cuda_tf32(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN convolutions on or off within the scope, restored after (process-wide
    flags: the scope is the forward)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def precision_scope(precision: str, device: torch.device | str, autocast_cache: bool = True) -> ContextManager:
    """The context a forward in ``precision`` on ``device`` runs in.

    ``autocast_cache=False`` for a CUDA graph capture: autocast must not keep weight casts made inside it.
    """
    device_type = torch.device(device).type
    if is_low_precision(precision):
        return torch.autocast(device_type, dtype=DTYPES[precision], cache_enabled=autocast_cache)
    if device_type == "cuda":
        return cuda_tf32(precision == "tf32")
    return nullcontext()
