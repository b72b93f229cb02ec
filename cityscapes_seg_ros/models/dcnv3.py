"""The DCNv3 module of InternImage (deformable convolution v3), channels-last.

value  = input_proj(x)
query  = GELU(LN(depthwise3x3(x)))            -> offset (G*K*2 per pixel), mask (G*K, softmax per group)
out    = output_proj(core(value, offset, mask))

The core (bilinear sampling at the 3x3 grid plus learned offsets, weighted by the mask) is
``cityscapes_seg_ros.ops.dcnv3``: the operator ``torch.ops.cityscapes_seg.dcnv3`` (one node to
``torch.compile`` and ``torch.export``, the compiled kernel when it loads), or with ``backend = "torch"`` the
pure-PyTorch core as plain PyTorch ops.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import ops
from ..dcnv3.geometry import DCNv3Geometry
from .layers import layer_norm


class DCNv3(nn.Module):
    def __init__(
        self,
        channels: int,
        group: int,
        offset_scale: float = 1.0,
        kernel_size: int = 3,
        stride: int = 1,
        pad: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        if channels % group != 0:
            raise ValueError(f"DCNv3: channels ({channels}) must be divisible by group ({group})")
        self.channels = channels
        self.group = group
        self.group_channels = channels // group
        self.offset_scale = offset_scale
        self.kernel_size = kernel_size
        self.stride = stride
        self.pad = pad
        self.dilation = dilation
        self.backend = "auto"  # the operator; "torch" forces the pure-PyTorch core

        points = kernel_size * kernel_size
        self.dw_conv = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels),
            layer_norm(channels, in_channels_first=True),
            nn.GELU(),
        )
        self.offset = nn.Linear(channels, group * points * 2)
        self.mask = nn.Linear(channels, group * points)
        self.input_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, H, W, C] -> [N, H, W, C]."""
        n, h, w, _ = x.shape
        value = self.input_proj(x)
        query = self.dw_conv(x.permute(0, 3, 1, 2))
        offset = self.offset(query)
        mask = self.mask(query).reshape(n, h, w, self.group, -1)
        mask = F.softmax(mask, dim=-1).reshape(n, h, w, -1).type(value.dtype)
        return self.output_proj(self.core(value, offset, mask))

    def core(self, value: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The DCNv3 core on channels-last tensors (``ops.dcnv3`` with this module's geometry and backend). The ONNX
        export shadows it per instance for the duration of an export (``export.dcnv3_gridsample``)."""
        return ops.dcnv3(value, offset, mask, *self.geometry(), backend=self.backend)

    def geometry(self) -> DCNv3Geometry:
        """The core's non-tensor arguments, in the official order."""
        k = self.kernel_size
        return DCNv3Geometry(
            k,
            k,
            self.stride,
            self.stride,
            self.pad,
            self.pad,
            self.dilation,
            self.dilation,
            self.group,
            self.group_channels,
            float(self.offset_scale),
        )
