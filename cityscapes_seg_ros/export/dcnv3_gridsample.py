"""The DCNv3 core written with ``F.grid_sample`` and standard ops, for a plugin-free ONNX graph.

Same layouts and meaning as ``ops.dcnv3`` (``dcnv3/reference.py`` gives the sampling positions). Every group of
every image becomes one ``GridSample`` (bilinear, zeros padding, align_corners=False) over its ``Cg`` channels at
``Ho*Wo x K`` points, followed by the mask-weighted sum over the K points: ``GridSample``, ``Mul``, ``ReduceSum``,
``Reshape`` / ``Transpose``, which TensorRT (8.6+) and ONNX Runtime run natively. Zeros padding on the unpadded
input equals the official core's zero-padded input, so no ``Pad`` is needed.

The positions depend only on the (static) export size apart from the offsets, so the exporter folds them into one
constant grid; the offsets are scaled into grid_sample's normalised coordinates by one multiply. Low-precision
inputs are sampled in fp32 and the result is cast back, as ``ops.dcnv3`` does: in fp16 a normalised coordinate
has about 1/1024 resolution, half a pixel at 2048 columns.

``gridsample_dcnv3(model)`` swaps this core into every DCNv3 module of a model for the duration of a ``with``
block (the export); outside it the model runs its usual core.
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ..dcnv3.geometry import DCNv3Geometry

__all__ = ["dcnv3_core_gridsample", "gridsample_dcnv3", "swapped_dcnv3_core"]


def _normalised_positions(
    out_size: int,
    in_size: int,
    stride: int,
    pad: int,
    dilation: int,
    kernel: int,
    offset_scale: float,
    taps_of_point: torch.Tensor,
) -> torch.Tensor:
    """[out_size, K] grid_sample coordinates (align_corners=False) of every point before its learned offset."""
    half = (dilation * (kernel - 1)) // 2
    base = torch.arange(out_size, dtype=torch.float64) * stride - pad + half
    taps = (taps_of_point.to(torch.float64) * dilation - half) * offset_scale
    pixels = base[:, None] + taps[None, :]
    return ((2.0 * pixels + 1.0) / in_size - 1.0).float()


def dcnv3_core_gridsample(
    input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, geometry: DCNv3Geometry
) -> torch.Tensor:
    """input [N, H, W, G*Cg], offset [N, Ho, Wo, G*K*2], mask [N, Ho, Wo, G*K] -> [N, Ho, Wo, G*Cg]."""
    kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w = geometry[:6]
    dilation_h, dilation_w, group, group_channels, offset_scale = geometry[6:]
    ho, wo = geometry.checked(input, offset, mask)
    n, h, w, channels = input.shape
    points = kernel_h * kernel_w
    point = torch.arange(points)  # point k = i*kernel_h + j: column i, row j of the window
    grid_x = _normalised_positions(wo, w, stride_w, pad_w, dilation_w, kernel_w, offset_scale, point // kernel_h)
    grid_y = _normalised_positions(ho, h, stride_h, pad_h, dilation_h, kernel_h, offset_scale, point % kernel_h)
    base = torch.stack(
        (grid_x.view(1, wo, points).expand(ho, wo, points), grid_y.view(ho, 1, points).expand(ho, wo, points)), dim=-1
    ).to(input.device)  # [Ho, Wo, K, 2]
    offset_to_grid = torch.tensor([2.0 * offset_scale / w, 2.0 * offset_scale / h], device=input.device)

    off = offset.float().view(n, ho, wo, group, points, 2)
    grid = base.view(1, ho, wo, 1, points, 2) + off * offset_to_grid
    grid = grid.permute(0, 3, 1, 2, 4, 5).reshape(n * group, ho * wo, points, 2)
    value = input.float().view(n, h, w, group, group_channels).permute(0, 3, 4, 1, 2)
    value = value.reshape(n * group, group_channels, h, w)
    samples = F.grid_sample(value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    weights = (
        mask.float().view(n, ho * wo, group, 1, points).permute(0, 2, 3, 1, 4).reshape(n * group, 1, ho * wo, points)
    )
    out = (samples * weights).sum(dim=-1)  # [N*G, Cg, Ho*Wo]
    out = out.view(n, channels, ho, wo).permute(0, 2, 3, 1)
    return out.to(input.dtype)


@contextlib.contextmanager
def swapped_dcnv3_core(model: nn.Module, core: Callable[..., torch.Tensor]) -> Iterator[nn.Module]:
    """Within the block every DCNv3 module of ``model`` runs ``core(value, offset, mask, geometry)``; restored
    after (the module's own ``core`` method is shadowed per instance, so the class and other models are untouched)."""
    from ..models.dcnv3 import DCNv3

    swapped = [module for module in model.modules() if isinstance(module, DCNv3)]
    try:
        for module in swapped:
            geometry = module.geometry()
            module.core = lambda value, offset, mask, geometry=geometry: core(value, offset, mask, geometry)
        yield model
    finally:
        for module in swapped:
            module.__dict__.pop("core", None)


def gridsample_dcnv3(model: nn.Module) -> ContextManager[nn.Module]:
    """Within the block every DCNv3 module of ``model`` runs ``dcnv3_core_gridsample``."""
    return swapped_dcnv3_core(model, dcnv3_core_gridsample)
