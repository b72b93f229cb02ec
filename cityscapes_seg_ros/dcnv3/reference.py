"""The pure-PyTorch DCNv3 core: the path every machine without the compiled op takes.

Same layouts and meaning as the official ``dcnv3_core_pytorch``: ``input`` [N, H, W, G*Cg], ``offset``
[N, Ho, Wo, G*K*2] (x, y per point), ``mask`` [N, Ho, Wo, G*K], output [N, Ho, Wo, G*Cg]; kernel point
k = i*kernel_h + j sits at column i, row j of the kernel window. Sample k of output pixel (ho, wo) is taken
by bilinear interpolation (zeros outside the image) at

    x = wo*stride_w - pad_w + (dil_w*(kw-1))//2 + offset_scale*(i*dil_w - (dil_w*(kw-1))//2 + off_x)

(and y alike), and the output is the mask-weighted sum of the K samples.

Why it is fast: the official core runs ``grid_sample`` over all K points and then a separate mask multiply
and sum, materialising [N*G, Cg, Ho*Wo, K]. Here every bilinear corner of every point becomes one row of
a gather-and-weighted-sum, which ``F.embedding_bag`` does in one fused pass: the value table is the input
zero-padded by one pixel before and two after, positions are clamped to [-1, size] (where every corner
outside the image lands on padding), so no validity masks are needed, and the weights
``mask * wy * wx`` are built with a handful of cheap ops on [..., K] tensors. It is differentiable with
respect to input, offset and mask. fp16 / bf16 inputs are computed in fp32 and returned in their dtype.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .geometry import DCNv3Geometry

__all__ = ["dcnv3_core_torch", "dcnv3_core_torch_unchecked"]


def _axis_positions(
    out_size: int,
    stride: int,
    pad: int,
    dilation: int,
    kernel: int,
    offset_scale: float,
    taps_of_point: torch.Tensor,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Base positions [out_size] and the displacement of each kernel point [K] along one axis, +1 for
    the padded table. ``taps_of_point[k]`` is the tap index of point k along this axis."""
    half = (dilation * (kernel - 1)) // 2
    base = torch.arange(out_size, dtype=dtype, device=device) * stride + (half - pad + 1)
    taps = taps_of_point.to(dtype) * dilation - half
    return base, taps * offset_scale


def _corner_weights(mask: torch.Tensor, frac_x: torch.Tensor, frac_y: torch.Tensor) -> torch.Tensor:
    """[..., 4, K] weights of the corners y0x0, y0x1, y1x0, y1x1 of every point, the mask folded in."""
    lower = mask * frac_y
    upper = mask - lower
    upper_right = upper * frac_x
    lower_right = lower * frac_x
    if torch.is_grad_enabled() and any(t.requires_grad for t in (mask, frac_x, frac_y)):
        return torch.stack((upper - upper_right, upper_right, lower - lower_right, lower_right), dim=-2)
    weights = torch.empty(mask.shape[:-1] + (4, mask.shape[-1]), dtype=mask.dtype, device=mask.device)
    torch.sub(upper, upper_right, out=weights[..., 0, :])
    weights[..., 1, :] = upper_right
    torch.sub(lower, lower_right, out=weights[..., 2, :])
    weights[..., 3, :] = lower_right
    return weights


def dcnv3_core_torch(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, *geometry: float) -> torch.Tensor:
    """DCNv3 core in PyTorch; see the module docstring for layouts and semantics. ``geometry``: the official
    arguments kernel_h ... offset_scale, or a ``DCNv3Geometry``."""
    return dcnv3_core_torch_unchecked(input, offset, mask, DCNv3Geometry.checked_of(geometry, input, offset, mask))


def dcnv3_core_torch_unchecked(
    input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, geometry: DCNv3Geometry
) -> torch.Tensor:
    """``dcnv3_core_torch`` for arguments that ``check_dcnv3_args`` has accepted."""
    kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w = geometry[:6]
    dilation_h, dilation_w, group, group_channels, offset_scale = geometry[6:]
    n, h, w, channels = input.shape
    ho = (h + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) // stride_h + 1
    wo = (w + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) // stride_w + 1
    points = kernel_h * kernel_w
    compute = torch.float64 if input.dtype == torch.float64 else torch.float32
    device = input.device

    point = torch.arange(points, device=device)  # point k = i*kernel_h + j: column i, row j
    base_x, taps_x = _axis_positions(
        wo, stride_w, pad_w, dilation_w, kernel_w, offset_scale, point // kernel_h, compute, device
    )
    base_y, taps_y = _axis_positions(
        ho, stride_h, pad_h, dilation_h, kernel_h, offset_scale, point % kernel_h, compute, device
    )
    off = offset.to(compute).view(n, ho, wo, group, points, 2)
    # Positions in the padded table (1 pixel of zeros before, 2 after), clamped so that every corner
    # of a point outside the image reads padding: the sample there is 0, as with zero padding.
    x = torch.add(base_x.view(1, 1, wo, 1, 1) + taps_x, off[..., 0], alpha=offset_scale).clamp_(0, w + 1)
    y = torch.add(base_y.view(1, ho, 1, 1, 1) + taps_y, off[..., 1], alpha=offset_scale).clamp_(0, h + 1)
    # Non-negative after the clamp, so truncation is floor and frac is the bilinear fraction.
    padded_w = w + 3
    rows = n * (h + 3) * padded_w * group
    index_dtype = torch.int32 if rows < 2**31 - 1 else torch.int64
    x0 = x.detach().to(index_dtype)
    y0 = y.detach().to(index_dtype)
    frac_x = torch.frac(x)
    frac_y = torch.frac(y)

    # Table row of the top-left corner of every point, then of all four corners.
    first_row = (torch.arange(n, device=device, dtype=index_dtype) * ((h + 3) * padded_w * group)).view(n, 1, 1, 1, 1)
    first_row = first_row + torch.arange(group, device=device, dtype=index_dtype).view(1, 1, 1, group, 1)
    top_left = (x0 * group).add_(y0, alpha=padded_w * group).add_(first_row)
    # (0, group, padded_w*group, padded_w*group + group) made on the device: no host copy (CUDA graph capture)
    corner_step = torch.arange(4, device=device, dtype=index_dtype)
    corner_step = (corner_step % 2) * group + (corner_step // 2) * (padded_w * group)
    index = torch.empty((n, ho, wo, group, 4, points), device=device, dtype=index_dtype)
    torch.add(top_left.unsqueeze(-2), corner_step.view(4, 1), out=index)

    weights = _corner_weights(mask.to(compute).view(n, ho, wo, group, points), frac_x, frac_y)

    table = F.pad(input.to(compute), (0, 0, 1, 2, 1, 2)).reshape(-1, group_channels)
    out = F.embedding_bag(
        index.view(-1, 4 * points), table, per_sample_weights=weights.view(-1, 4 * points), mode="sum"
    )
    return out.view(n, ho, wo, channels).to(input.dtype)
