"""The DCNv3 core with a choice of backend: ``dcnv3(..., backend="auto")``.

Backends: ``"auto"``, ``"cuda"`` and ``"cpu"`` call the operator ``torch.ops.cityscapes_seg.dcnv3``
(``dcnv3_library.py``: one op for ``torch.compile``, ``torch.export`` and CUDA graphs), which runs the compiled
op of ``kernels/dcnv3`` (``dcnv3_compiled.py``) of the input's device when it is available (building it on first
use) and the pure-PyTorch core otherwise; ``"auto"`` logs that choice once per device, ``"cuda"`` and ``"cpu"``
require the compiled op. ``"torch"`` is the pure-PyTorch core (``dcnv3_torch.py``) as plain PyTorch ops. The
environment variable ``CITYSCAPES_SEG_DCNV3_BACKEND`` (one of the backend names) overrides ``"auto"``, e.g.
``CITYSCAPES_SEG_DCNV3_BACKEND=torch`` forces the pure-PyTorch core.
"""

from __future__ import annotations

import logging
import os
import threading

import torch

from .compiled import dcnv3_op_error, load_dcnv3_op
from .geometry import DCNv3Geometry, check_dcnv3_tensor_types
from .library import dcnv3_op
from .reference import dcnv3_core_torch_unchecked

__all__ = ["BACKENDS", "BACKEND_ENV", "dcnv3", "resolve_backend"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "cuda", "cpu", "torch")
BACKEND_ENV = "CITYSCAPES_SEG_DCNV3_BACKEND"

_logged_choices: set[tuple[str, str]] = set()
_log_lock = threading.Lock()


def _check_backend_name(backend: str, source: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"dcnv3: unknown backend {backend!r} ({source}); choose one of {', '.join(BACKENDS)}")
    return backend


def _requested_backend(backend: str) -> str:
    backend = _check_backend_name(backend, "argument")
    if backend == "auto" and os.environ.get(BACKEND_ENV):
        backend = _check_backend_name(os.environ[BACKEND_ENV].strip().lower(), f"${BACKEND_ENV}")
    return backend


def resolve_backend(device: torch.device | str, backend: str = "auto") -> str:
    """The core that ``dcnv3(..., backend=backend)`` runs for tensors on ``device``: "cuda" or "cpu" (the
    compiled op, inside the operator) or "torch". Raises ValueError for an unknown name, RuntimeError when a
    compiled op that was asked for explicitly is unavailable or does not match the device."""
    device = torch.device(device)
    backend = _requested_backend(backend)
    if backend == "torch":
        return backend
    if backend == "auto":
        chosen = device.type if load_dcnv3_op(device.type) is not None else "torch"
        _log_choice_once(device.type, chosen)
        return chosen
    if device.type != backend:
        raise RuntimeError(f"dcnv3: backend {backend!r} cannot run tensors on {device}")
    if load_dcnv3_op(backend) is None:
        raise RuntimeError(f"dcnv3: the compiled {backend} op is unavailable: {dcnv3_op_error(backend)}")
    return backend


def _log_choice_once(device_type: str, chosen: str) -> None:
    with _log_lock:
        if (device_type, chosen) in _logged_choices:
            return
        _logged_choices.add((device_type, chosen))
    if chosen == "torch":
        reason = dcnv3_op_error(device_type) or "no compiled op for this device"
        log.info("DCNv3 on %s: pure-PyTorch core (%s)", device_type, reason)
    else:
        log.info("DCNv3 on %s: compiled %s op", device_type, chosen)


def dcnv3(
    input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, *geometry: float, backend: str = "auto"
) -> torch.Tensor:
    """The DCNv3 core with the layouts and meaning of the official ``dcnv3_core_pytorch``.

    input [N, H, W, group*group_channels] (channels-last), offset [N, Ho, Wo, group*K*2], mask
    [N, Ho, Wo, group*K] -> [N, Ho, Wo, group*group_channels] in the input's dtype (fp32, fp16 or bf16,
    accumulated in fp32; fp64 too). ``geometry``: the official arguments kernel_h, kernel_w, stride_h, stride_w,
    pad_h, pad_w, dilation_h, dilation_w, group, group_channels, offset_scale, or a ``DCNv3Geometry``. ``backend``: "auto", "cuda", "cpu" or "torch". Differentiable.
    Every backend but "torch" is the one operator ``torch.ops.cityscapes_seg.dcnv3``.
    """
    geometry = DCNv3Geometry.of(geometry)
    if _requested_backend(backend) == "torch":
        geometry.checked(input, offset, mask)
        return dcnv3_core_torch_unchecked(input, offset, mask, geometry)
    check_dcnv3_tensor_types(input, offset, mask)  # the one-line error, before the operator's own
    if not torch.compiler.is_compiling():  # compiled code calls the operator, which chooses its core itself
        resolve_backend(input.device, backend)  # logs the choice; raises when an explicit choice cannot run
    return dcnv3_op(input, offset, mask, *geometry)  # the operator checks the arguments
