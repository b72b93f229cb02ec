"""The compiled DCNv3 core op (``kernels/dcnv3``) for CPU and CUDA tensors, with autograd.

One kernel source serves both devices: ``kernels/dcnv3/dcnv3_kernels.h`` holds the per-sample sampling and
accumulation code as ``__host__ __device__`` functions; ``dcnv3_cpu.cpp`` runs them with ``at::parallel_for``
(the op ``dcnv3_cpu``), ``dcnv3_cuda.cu`` in CUDA kernels (``dcnv3_cuda``). They are loaded like every compiled
op by ``compiled.py`` (built by ``pip install``, else just in time; ``CITYSCAPES_SEG_COMPILED_OPS``). The CUDA
op is built for ``TORCH_CUDA_ARCH_LIST`` when set, else for 8.7 (Jetson Orin), 8.9, 9.0 (+PTX) and the local
device's architecture.

The arguments are checked once, here (``check_dcnv3_args``); the kernels trust them. Semantics are those of the
official ``dcnv3_core_pytorch`` (see ``kernels/dcnv3/dcnv3_kernels.h``).
"""

from __future__ import annotations

import logging
import os
import threading
from types import ModuleType

import torch

from ..ops import compiled
from ..ops.op_records import DEFAULT_CUDA_ARCHS, OPS
from .geometry import DCNv3Geometry, check_dcnv3_args, check_dcnv3_result_tensor

__all__ = [
    "DEVICE_TYPES",
    "available_backends",
    "dcnv3_backward",
    "dcnv3_compiled",
    "dcnv3_compiled_unchecked",
    "dcnv3_forward",
    "dcnv3_op_error",
    "load_dcnv3_op",
    "nvcc_compile_command",
]

DEVICE_TYPES = ("cpu", "cuda")
# The CUDA op's forward kernel is "baseline" unless this names another (or ``set_forward_kernel`` does): the
# gather kernels (smem, regs, tile, tile_regs) have not passed the GPU tests yet, so they run only when asked for.
CUDA_KERNEL_ENV = "CITYSCAPES_SEG_DCNV3_CUDA_KERNEL"
VALIDATED_CUDA_KERNELS = ("baseline",)

log = logging.getLogger(__name__)
_kernel_noted = threading.Event()


def load_dcnv3_op(device_type: str | torch.device = "cpu") -> ModuleType | None:
    """The compiled DCNv3 op for ``device_type`` ("cpu" or "cuda"), loaded or built on first use; None when it
    is unavailable (``dcnv3_op_error`` says why). The module has ``forward(input, offset, mask, kernel_h,
    kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels, offset_scale,
    out)`` and ``backward(..., offset_scale, grad_output)``, which trust their arguments: call them through the
    functions below."""
    device_type = torch.device(device_type).type
    module = compiled.load(f"dcnv3_{device_type}") if device_type in DEVICE_TYPES else None
    if module is not None and device_type == "cuda" and not _kernel_noted.is_set():
        _kernel_noted.set()
        note_cuda_kernel_request(os.environ.get(CUDA_KERNEL_ENV, ""))
    return module


def note_cuda_kernel_request(requested: str) -> None:
    """A log line for a CUDA forward kernel asked for that has not passed the GPU tests (the op itself warns
    once when such a kernel cannot take a call and the baseline runs it)."""
    if requested and requested not in VALIDATED_CUDA_KERNELS:
        log.warning(
            "DCNv3 CUDA forward kernel %r requested by %s: it has not passed the GPU tests (validated: %s)",
            requested,
            CUDA_KERNEL_ENV,
            ", ".join(VALIDATED_CUDA_KERNELS),
        )


def dcnv3_op_error(device_type: str | torch.device) -> str | None:
    """Why ``load_dcnv3_op(device_type)`` gave None (None when it gave the op or has not been called)."""
    device_type = torch.device(device_type).type
    if device_type not in DEVICE_TYPES:
        return f"no compiled DCNv3 op for {device_type} tensors"
    return compiled.unavailable_reason(f"dcnv3_{device_type}")


def available_backends() -> list[str]:
    """Device types with a working compiled op, e.g. ["cpu"] or ["cpu", "cuda"] (builds on first call)."""
    return [d for d in DEVICE_TYPES if load_dcnv3_op(d) is not None]


def nvcc_compile_command(
    output: str | os.PathLike,
    archs: tuple[str, ...] = DEFAULT_CUDA_ARCHS,
    extra_include_paths: tuple[str, ...] = (),
    nvcc: str = "nvcc",
) -> list[str]:
    """An ``nvcc -c`` command that compiles the CUDA op's kernels (dcnv3_cuda.cu) with torch's headers and the
    op's flags. Used by the tests as a compile-only check on machines without a GPU."""
    from torch.utils import cpp_extension

    root = compiled.kernels_root()
    if root is None:
        raise RuntimeError(f"kernel sources not found (set {compiled.KERNELS_ENV})")
    src = root / OPS["dcnv3_cuda"].folder
    cmd = [nvcc, "-c", str(src / "dcnv3_cuda.cu"), "-o", str(output), *OPS["dcnv3_cuda"].cuda_flags]
    cmd += [
        "-Xcompiler",
        "-fPIC",
        "-D__CUDA_NO_HALF_OPERATORS__",
        "-D__CUDA_NO_HALF_CONVERSIONS__",
        "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-D__CUDA_NO_HALF2_OPERATORS__",
        "--expt-relaxed-constexpr",
    ]
    for inc in [*cpp_extension.include_paths(), *extra_include_paths, str(src)]:
        cmd += ["-I", inc]
    for a in archs:
        num = a.replace(".", "")
        cmd += ["-gencode", f"arch=compute_{num},code=sm_{num}"]
    return cmd


# ---------------------------------------------------------------------------------------------- wrappers


def _op_for(device: torch.device) -> ModuleType:
    module = load_dcnv3_op(device.type)
    if module is None:
        raise RuntimeError(f"compiled DCNv3 {device.type} op unavailable: {dcnv3_op_error(device.type)}")
    return module


def dcnv3_forward(
    input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, *geometry: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Forward of the compiled op, no autograd; ``out`` (optional, contiguous, the input's dtype) receives the
    result. Same arguments as ``dcnv3_compiled``."""
    args = DCNv3Geometry.of(geometry)
    ho, wo = check_dcnv3_args(input, offset, mask, args)
    if out is not None:
        check_dcnv3_result_tensor("out", out, input, ho, wo)
    module = _op_for(input.device)
    return module.forward(
        input.contiguous(), offset.to(input.dtype).contiguous(), mask.to(input.dtype).contiguous(), *args, out
    )


def dcnv3_backward(
    input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, *geometry_and_grad_output: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """grad_input, grad_offset, grad_mask of the compiled op for ``grad_output`` (no autograd): the arguments of
    ``dcnv3_compiled``, then ``grad_output``."""
    *geometry, grad_output = geometry_and_grad_output
    args = DCNv3Geometry.of(geometry)
    ho, wo = check_dcnv3_args(input, offset, mask, args)
    check_dcnv3_result_tensor("grad_output", grad_output, input, ho, wo)
    return _backward(_op_for(input.device), input, offset.to(input.dtype), mask.to(input.dtype), args, grad_output)


def _backward(module, input, offset, mask, args, grad_output) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gi, go, gm = module.backward(
        input.contiguous(), offset.contiguous(), mask.contiguous(), *args, grad_output.to(input.dtype).contiguous()
    )
    return gi, go, gm


class _DCNv3Function(torch.autograd.Function):
    """Autograd over the op for checked arguments (offset and mask already in the input's dtype)."""

    @staticmethod
    def forward(ctx, module, input, offset, mask, *args):
        ctx.module, ctx.args = module, args
        ctx.save_for_backward(input, offset, mask)
        return module.forward(input.contiguous(), offset.contiguous(), mask.contiguous(), *args, None)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        input, offset, mask = ctx.saved_tensors
        gi, go, gm = _backward(ctx.module, input, offset, mask, ctx.args, grad_output)
        return (None, gi, go, gm) + (None,) * len(ctx.args)


def dcnv3_compiled(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, *geometry: float) -> torch.Tensor:
    """The DCNv3 core on the compiled op of ``input.device`` (CPU or CUDA), with autograd.

    Same signature and semantics as the official ``dcnv3_core_pytorch``: input [N, H, W, G*Cg], offset
    [N, Hout, Wout, G*K*2], mask [N, Hout, Wout, G*K] (softmaxed) -> [N, Hout, Wout, G*Cg]. fp32, fp16,
    bf16 (accumulated in fp32) and fp64. Offset and mask are cast to the input's dtype; non-contiguous
    tensors are made contiguous. Raises ValueError for bad shapes, RuntimeError when the op is unavailable.
    """
    return dcnv3_compiled_unchecked(input, offset, mask, DCNv3Geometry.checked_of(geometry, input, offset, mask))


def dcnv3_compiled_unchecked(
    input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, geometry: DCNv3Geometry
) -> torch.Tensor:
    """``dcnv3_compiled`` for arguments that ``check_dcnv3_args`` has accepted."""
    module = _op_for(input.device)
    offset = offset.to(input.dtype)
    mask = mask.to(input.dtype)
    args = tuple(geometry)
    if torch.is_grad_enabled() and (input.requires_grad or offset.requires_grad or mask.requires_grad):
        return _DCNv3Function.apply(module, input, offset, mask, *args)
    return module.forward(input.contiguous(), offset.contiguous(), mask.contiguous(), *args, None)
