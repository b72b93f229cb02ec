"""Decode heads of mmsegmentation 0.x as the InternImage Cityscapes models use them.

UPerHead (decode), FCNHead (auxiliary, training only but present in the checkpoints) and
SegformerHead. Module names match mmseg's so checkpoints load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import torch
from torch import nn

from .layers import ConvBNReLU, float_island, resize_bilinear


@dataclass(frozen=True)
class UPerHeadConfig:
    in_channels: Tuple[int, ...]
    channels: int = 512
    num_classes: int = 150
    pool_scales: Tuple[int, ...] = (1, 2, 3, 6)


@dataclass(frozen=True)
class SegformerHeadConfig:
    in_channels: Tuple[int, ...]
    channels: int = 256
    num_classes: int = 150


@dataclass(frozen=True)
class FCNHeadConfig:
    in_channels: int
    in_index: int = 2
    channels: int = 256
    num_classes: int = 150
    num_convs: int = 1


class PyramidPooling(nn.ModuleList):
    """PSP module: adaptive average pooling to each scale, 1x1 conv, upsampled back."""

    def __init__(self, pool_scales: Tuple[int, ...], in_channels: int, channels: int) -> None:
        super().__init__(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvBNReLU(in_channels, channels, 1)) for scale in pool_scales
        )

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [resize_bilinear(branch(x), x.shape[2:]) for branch in self]


class UPerHead(nn.Module):
    def __init__(self, cfg: UPerHeadConfig) -> None:
        super().__init__()
        top = cfg.in_channels[-1]
        self.psp_modules = PyramidPooling(cfg.pool_scales, top, cfg.channels)
        self.bottleneck = ConvBNReLU(top + len(cfg.pool_scales) * cfg.channels, cfg.channels, 3)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(c, cfg.channels, 1) for c in cfg.in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvBNReLU(cfg.channels, cfg.channels, 3) for _ in cfg.in_channels[:-1])
        self.fpn_bottleneck = ConvBNReLU(len(cfg.in_channels) * cfg.channels, cfg.channels, 3)
        self.conv_seg = nn.Conv2d(cfg.channels, cfg.num_classes, 1)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        top = features[-1]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, features)]
        laterals.append(self.bottleneck(torch.cat([top, *self.psp_modules(top)], dim=1)))
        # Top-down path: each level adds the (already accumulated) level above it.
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize_bilinear(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(lateral) for conv, lateral in zip(self.fpn_convs, laterals)]
        outs.append(laterals[-1])
        finest = outs[0].shape[2:]
        fused = self.fpn_bottleneck(torch.cat([resize_bilinear(o, finest) for o in outs], dim=1))
        return float_island(self.conv_seg, fused)


class SegformerHead(nn.Module):
    def __init__(self, cfg: SegformerHeadConfig) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvBNReLU(c, cfg.channels, 1) for c in cfg.in_channels)
        self.fusion_conv = ConvBNReLU(cfg.channels * len(cfg.in_channels), cfg.channels, 1)
        self.conv_seg = nn.Conv2d(cfg.channels, cfg.num_classes, 1)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        finest = features[0].shape[2:]
        outs = [resize_bilinear(conv(f), finest) for conv, f in zip(self.convs, features)]
        return float_island(self.conv_seg, self.fusion_conv(torch.cat(outs, dim=1)))


class FCNHead(nn.Module):
    """Auxiliary head. Kept so checkpoints load strictly and for training; unused at inference."""

    def __init__(self, cfg: FCNHeadConfig) -> None:
        super().__init__()
        self.in_index = cfg.in_index
        channels_in = [cfg.in_channels] + [cfg.channels] * (cfg.num_convs - 1)
        self.convs = nn.Sequential(*(ConvBNReLU(c, cfg.channels, 3) for c in channels_in))
        self.conv_seg = nn.Conv2d(cfg.channels, cfg.num_classes, 1)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        return self.conv_seg(self.convs(features[self.in_index]))
