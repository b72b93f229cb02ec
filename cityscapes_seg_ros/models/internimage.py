"""InternImage backbone (InternImage-T/S/B/L/XL with the DCNv3 core op), channels-last inside.

stem (two stride-2 3x3 convs) -> 4 stages of blocks [x + gamma1*DCNv3, x + gamma2*MLP] with a
stride-2 downsample between stages. Outputs the four stage features (before each downsample),
channels-first, at strides 4, 8, 16, 32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import ops
from .dcnv3 import DCNv3
from .layers import layer_norm


@dataclass(frozen=True)
class InternImageConfig:
    channels: int
    depths: Tuple[int, ...]
    groups: Tuple[int, ...]
    mlp_ratio: float = 4.0
    offset_scale: float = 1.0
    post_norm: bool = False
    layer_scale: Optional[float] = 1.0
    out_indices: Tuple[int, ...] = (0, 1, 2, 3)

    @property
    def stage_channels(self) -> Tuple[int, ...]:
        return tuple(self.channels * 2**i for i in range(len(self.depths)))


class StemLayer(nn.Module):
    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, out_channels // 2, 3, stride=2, padding=1)
        self.norm1 = layer_norm(out_channels // 2, in_channels_first=True, out_channels_first=True)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1)
        self.norm2 = layer_norm(out_channels, in_channels_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, H/4, W/4, C]."""
        return self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


class DownsampleLayer(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, bias=False)
        self.norm = layer_norm(2 * channels, in_channels_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x.permute(0, 3, 1, 2)))


class MLPLayer(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class InternImageLayer(nn.Module):
    """One block. Pre-norm (T): x + g*f(norm(x)); post-norm (S/B/L/XL): x + g*norm(f(x))."""

    def __init__(self, channels: int, group: int, cfg: InternImageConfig) -> None:
        super().__init__()
        self.post_norm = cfg.post_norm
        self.norm1 = layer_norm(channels)
        self.dcn = DCNv3(channels, group, offset_scale=cfg.offset_scale)
        self.norm2 = layer_norm(channels)
        self.mlp = MLPLayer(channels, int(channels * cfg.mlp_ratio))
        self.layer_scale = cfg.layer_scale is not None
        if self.layer_scale:
            self.gamma1 = nn.Parameter(torch.full((channels,), float(cfg.layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((channels,), float(cfg.layer_scale)))

    def _scaled(self, gamma_name: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, gamma_name) * x if self.layer_scale else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = x + self._scaled("gamma1", self.norm1(self.dcn(x)))
            x = x + self._scaled("gamma2", self.norm2(self.mlp(x)))
        else:
            x = x + self._scaled("gamma1", self.dcn(self.norm1(x)))
            x = x + self._scaled("gamma2", self.mlp(self.norm2(x)))
        return x


class InternImageStage(nn.Module):
    def __init__(self, index: int, cfg: InternImageConfig) -> None:
        super().__init__()
        channels = cfg.stage_channels[index]
        self.post_norm = cfg.post_norm
        self.blocks = nn.ModuleList(
            InternImageLayer(channels, cfg.groups[index], cfg) for _ in range(cfg.depths[index])
        )
        if not cfg.post_norm:
            self.norm = layer_norm(channels)
        is_last = index == len(cfg.depths) - 1
        self.downsample = None if is_last else DownsampleLayer(channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns (input of the next stage, this stage's output feature)."""
        for block in self.blocks:
            x = block(x)
        if not self.post_norm:
            x = self.norm(x)
        feature = x
        if self.downsample is not None:
            x = self.downsample(x)
        return x, feature


class InternImage(nn.Module):
    def __init__(self, cfg: InternImageConfig) -> None:
        super().__init__()
        if not (len(cfg.depths) == len(cfg.groups)):
            raise ValueError(f"InternImage: depths {cfg.depths} and groups {cfg.groups} differ in length")
        self.cfg = cfg
        self.channels_last_features = False  # return the features as channels-last views (set_channels_last)
        self.patch_embed = StemLayer(cfg.channels)
        self.levels = nn.ModuleList(InternImageStage(i, cfg) for i in range(len(cfg.depths)))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """[N, 3, H, W] -> features [N, C_i, H_i, W_i] for each index in ``out_indices``."""
        x = self.patch_embed(x)
        features = []
        for index, level in enumerate(self.levels):
            x, feature = level(x)
            if index in self.cfg.out_indices:
                feature = feature.permute(0, 3, 1, 2)  # channels-last memory already
                features.append(feature if self.channels_last_features else feature.contiguous())
        return features

    def set_dcnv3_backend(self, backend: str) -> None:
        if backend not in ops.BACKENDS:
            raise ValueError(f"unknown DCNv3 backend {backend!r}; choose one of {', '.join(ops.BACKENDS)}")
        for module in self.modules():
            if isinstance(module, DCNv3):
                module.backend = backend


def internimage_config_from_mmseg(backbone: dict) -> InternImageConfig:
    """Read an official ``backbone=dict(type='InternImage', ...)`` config into ours."""
    supported = {
        "type",
        "core_op",
        "channels",
        "depths",
        "groups",
        "mlp_ratio",
        "drop_rate",
        "drop_path_rate",
        "drop_path_type",
        "act_layer",
        "norm_layer",
        "layer_scale",
        "offset_scale",
        "post_norm",
        "with_cp",
        "out_indices",
        "frozen_stages",
        "init_cfg",
        "pretrained",
    }
    unsupported = sorted(set(backbone) - supported)
    if unsupported:
        raise ValueError(f"InternImage options not supported (InternImage-H/G only): {unsupported}")
    expected = {"type": "InternImage", "core_op": "DCNv3", "norm_layer": "LN", "act_layer": "GELU"}
    for key, value in expected.items():
        if backbone.get(key, value) != value:
            raise ValueError(f"InternImage backbone: only {key}={value!r} is supported, got {backbone[key]!r}")
    return InternImageConfig(
        channels=int(backbone["channels"]),
        depths=_int_tuple(backbone["depths"]),
        groups=_int_tuple(backbone["groups"]),
        mlp_ratio=float(backbone.get("mlp_ratio", 4.0)),
        offset_scale=float(backbone.get("offset_scale", 1.0)),
        post_norm=bool(backbone.get("post_norm", False)),
        layer_scale=None if backbone.get("layer_scale") is None else float(backbone["layer_scale"]),
        out_indices=_int_tuple(backbone.get("out_indices", (0, 1, 2, 3))),
    )


def _int_tuple(values: Sequence[int]) -> Tuple[int, ...]:
    return tuple(int(v) for v in values)
