"""Encoder-decoder segmentor: InternImage backbone + decode head (+ auxiliary head for checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
from torch import nn

from .heads import FCNHead, FCNHeadConfig, SegformerHead, SegformerHeadConfig, UPerHead, UPerHeadConfig
from .internimage import InternImage, InternImageConfig
from .layers import resize_bilinear

HF_REPO_ID = "OpenGVLab/InternImage"


@dataclass(frozen=True)
class HubLocation:
    repo_id: str
    filename: str

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/resolve/main/{self.filename}"


@dataclass(frozen=True)
class SegmentorConfig:
    name: str
    backbone: InternImageConfig
    decode_head: Union[UPerHeadConfig, SegformerHeadConfig]
    auxiliary_head: Optional[FCNHeadConfig] = None
    pretrained: Optional[HubLocation] = None
    published_miou: Optional[Tuple[float, float]] = None  # single-scale, multi-scale (val)

    @property
    def num_classes(self) -> int:
        return self.decode_head.num_classes


class EncoderDecoder(nn.Module):
    """``forward(x)`` = the official ``EncoderDecoder.encode_decode``: logits resized to the input size."""

    def __init__(self, cfg: SegmentorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = InternImage(cfg.backbone)
        if isinstance(cfg.decode_head, UPerHeadConfig):
            self.decode_head: nn.Module = UPerHead(cfg.decode_head)
        else:
            self.decode_head = SegformerHead(cfg.decode_head)
        if cfg.auxiliary_head is not None:
            self.auxiliary_head = FCNHead(cfg.auxiliary_head)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalized [N, 3, H, W] -> fp32 logits [N, num_classes, H, W] (resized in fp32 under autocast)."""
        return resize_bilinear(self.head_logits(x).float().contiguous(), x.shape[2:])  # head may be channels-last

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalized [N, 3, H, W] -> the decode head's logits [N, num_classes, H/4, W/4], before the resize."""
        return self.decode_head(self.backbone(x))

    def set_channels_last(self, enabled: bool) -> None:
        """Run the decode head in the channels-last memory format (faster convolutions on GPUs, slower on CPUs).

        The backbone computes channels-last already; this keeps its features in that layout (no copy to
        channels-first) and lays out the head's weights to match. Results are the same up to rounding.
        """
        self.backbone.channels_last_features = enabled
        self.decode_head.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    def set_dcnv3_backend(self, backend: str) -> None:
        """ "auto" picks the fastest available DCNv3 core; "torch" forces the pure-PyTorch one."""
        self.backbone.set_dcnv3_backend(backend)
