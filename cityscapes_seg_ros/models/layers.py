"""Small building blocks shared by the backbone and the heads.

Module names and nesting follow the official InternImage / mmsegmentation 0.x modules so that the
released checkpoints' keys (``norm1.1``, ``dw_conv.1.1``, ``conv``/``bn`` ...) map onto them unchanged.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F

BACKBONE_LN_EPS = 1e-6  # InternImage's LayerNorms, not PyTorch's default 1e-5
HEAD_BN_EPS = 1e-5


class ToChannelsLast(nn.Module):
    """[N, C, H, W] -> [N, H, W, C] (a view)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class ToChannelsFirst(nn.Module):
    """[N, H, W, C] -> [N, C, H, W] (a view)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


class FloatLayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the input's dtype, returned in the input's dtype.

    Under bf16/fp16 autocast the input may be low precision (a conv or linear output); its mean and variance
    over hundreds of channels are taken in fp32 so the normalised features keep their accuracy. In fp32 it is
    ``nn.LayerNorm`` exactly (same module, same checkpoint keys).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return super().forward(x)
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


def float_island(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` in fp32 even under autocast (the classifier: low-precision logits would round near-ties).

    A module whose weights were converted to a low precision (a whole model ``.to(torch.bfloat16)``) runs with
    fp32 copies of them: the logits are fp32 either way.
    """
    if x.device.type not in ("cpu", "cuda"):  # e.g. meta tensors (FLOP counting): no autocast to step out of
        return _fp32_call(module, x.float())
    with torch.autocast(x.device.type, enabled=False):
        return _fp32_call(module, x.float())


def _fp32_call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    tensors = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    low = {name: t.float() for name, t in tensors.items() if t.is_floating_point() and t.dtype != torch.float32}
    if not low:
        return module(x)
    return torch.func.functional_call(module, low, (x,), strict=False)


def layer_norm(channels: int, in_channels_first: bool = False, out_channels_first: bool = False) -> nn.Sequential:
    """LayerNorm over channels wrapped with the layout changes around it.

    The position of the LayerNorm inside the Sequential decides its key in a checkpoint
    (``.0`` when the input is channels-last, ``.1`` when a permute comes first).
    """
    layers = []
    if in_channels_first:
        layers.append(ToChannelsLast())
    layers.append(FloatLayerNorm(channels, eps=BACKBONE_LN_EPS))
    if out_channels_first:
        layers.append(ToChannelsFirst())
    return nn.Sequential(*layers)


class ConvBNReLU(nn.Module):
    """mmcv's ``ConvModule`` as the heads use it (conv without bias, BatchNorm, ReLU).

    Keys: ``conv.weight``, ``bn.{weight,bias,running_mean,running_var,num_batches_tracked}``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=HEAD_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def resize_bilinear(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with align_corners=False, as every resize in the official models."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
