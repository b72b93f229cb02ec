"""The DCNv3 core as a PyTorch operator, ``torch.ops.cityscapes_seg.dcnv3``, so that ``torch.compile`` (also with
``fullgraph=True``), ``torch.export`` and CUDA graphs see one op instead of Python.

* ``cityscapes_seg::dcnv3(Tensor input, Tensor offset, Tensor mask, int kernel_h, int kernel_w, int stride_h,
  int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int group, int group_channels,
  float offset_scale) -> Tensor``: the official ``dcnv3_core_pytorch`` argument list, layouts and meaning.
* ``cityscapes_seg::dcnv3_backward(..., float offset_scale, Tensor grad_output) -> (Tensor, Tensor, Tensor)``:
  grad_input, grad_offset, grad_mask; the op's autograd formula calls it, so a compiled backward graph holds
  an op too, not Python.

Both run, on the tensors' device, the compiled op of ``kernels/dcnv3`` when it loads (``dcnv3_compiled.py``)
and the pure-PyTorch core otherwise (its autograd for the backward). Both check their arguments (ValueError
naming the problem); offset and mask are cast to the input's dtype, the gradients back to theirs. Fake kernels
give the shapes to tracing. The kernels launch on the current CUDA stream, allocate through torch and never
wait for the device, so a CUDA graph may capture them. The op is registered when this module is first
imported, i.e. on the first use of ``ops.dcnv3`` or of the model, never by ``import cityscapes_seg_ros``.
"""

# No ``from __future__ import annotations``: torch.library reads the schema from the annotations.
import contextlib
from typing import Any, Iterator

import torch
from torch._C import DispatchKey

from .compiled import load_dcnv3_op
from .geometry import DCNv3Geometry
from .reference import dcnv3_core_torch_unchecked

__all__ = ["BACKWARD_OP_NAME", "OP_NAME", "dcnv3_backward_op", "dcnv3_op"]

OP_NAME = "cityscapes_seg::dcnv3"
BACKWARD_OP_NAME = "cityscapes_seg::dcnv3_backward"


@torch.library.custom_op(OP_NAME, mutates_args=())
def dcnv3_op(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
    group: int,
    group_channels: int,
    offset_scale: float,
) -> torch.Tensor:
    """The DCNv3 core (see ``ops.dcnv3``): input [N, H, W, G*Cg], offset [N, Ho, Wo, G*K*2], mask
    [N, Ho, Wo, G*K] -> [N, Ho, Wo, G*Cg] in the input's dtype."""
    spatial = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    geometry = DCNv3Geometry(*spatial, group, group_channels, offset_scale)
    geometry.checked(input, offset, mask)
    offset, mask = offset.to(input.dtype), mask.to(input.dtype)
    module = load_dcnv3_op(input.device.type)
    if module is None:
        return dcnv3_core_torch_unchecked(input, offset, mask, geometry)
    return module.forward(input.contiguous(), offset.contiguous(), mask.contiguous(), *geometry, None)


@dcnv3_op.register_fake
def _dcnv3_fake(input, offset, mask, *geometry) -> torch.Tensor:
    ho, wo = DCNv3Geometry.of(geometry).checked(input, offset, mask)
    return input.new_empty((input.shape[0], ho, wo, input.shape[3]))


@torch.library.custom_op(BACKWARD_OP_NAME, mutates_args=())
def dcnv3_backward_op(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
    group: int,
    group_channels: int,
    offset_scale: float,
    grad_output: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """grad_input, grad_offset, grad_mask of ``dcnv3_op`` for ``grad_output``, each in its tensor's dtype."""
    spatial = (kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    geometry = DCNv3Geometry(*spatial, group, group_channels, offset_scale)
    geometry.checked(input, offset, mask)
    dtypes = (input.dtype, offset.dtype, mask.dtype)
    offset, mask, grad_output = offset.to(input.dtype), mask.to(input.dtype), grad_output.to(input.dtype)
    module = load_dcnv3_op(input.device.type)
    if module is None:
        grads = _torch_core_gradients(input, offset, mask, geometry, grad_output)
    else:
        grads = module.backward(
            input.contiguous(), offset.contiguous(), mask.contiguous(), *geometry, grad_output.contiguous()
        )
    return tuple(g.to(dtype) for g, dtype in zip(grads, dtypes, strict=True))


def _torch_core_gradients(
    input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, geometry: DCNv3Geometry, grad_output: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """The autograd of the pure-PyTorch core. An operator's kernel runs with autograd's dispatch keys excluded
    (the operator is one node to autograd); they are let in again here for the recomputation only."""
    with torch.enable_grad(), _autograd_dispatch_enabled():
        leaves = [t.detach().requires_grad_() for t in (input, offset, mask)]
        output = dcnv3_core_torch_unchecked(*leaves, geometry)
        return torch.autograd.grad(output, leaves, grad_output)


@contextlib.contextmanager
def _autograd_dispatch_enabled() -> Iterator[None]:
    keys = (DispatchKey.AutogradFunctionality, DispatchKey.ADInplaceOrView)
    excluded = [torch._C._dispatch_tls_is_dispatch_key_excluded(key) for key in keys]
    try:
        for key in keys:
            torch._C._dispatch_tls_set_dispatch_key_excluded(key, False)
        yield
    finally:
        for key, was_excluded in zip(keys, excluded, strict=True):
            torch._C._dispatch_tls_set_dispatch_key_excluded(key, was_excluded)


@dcnv3_backward_op.register_fake
def _dcnv3_backward_fake(input, offset, mask, *geometry_and_grad_output):
    return torch.empty_like(input), torch.empty_like(offset), torch.empty_like(mask)


def _setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    input, offset, mask = inputs[:3]
    ctx.save_for_backward(input, offset, mask)
    ctx.geometry = inputs[3:]


def _backward(ctx: Any, grad_output: torch.Tensor) -> tuple:
    input, offset, mask = ctx.saved_tensors
    grads = dcnv3_backward_op(input, offset, mask, *ctx.geometry, grad_output)
    return (*grads, *(None,) * len(ctx.geometry))


dcnv3_op.register_autograd(_backward, setup_context=_setup_context)
