"""``build_segmentor``: a named (or explicit) config + a checkpoint -> a ready model on a device."""

from __future__ import annotations

import logging
from typing import Mapping, Optional, Union

import torch

from ..models import EncoderDecoder, SegmentorConfig, config_from_mmseg, get_model_config
from .checkpoint import PathLike, check_state_dict, read_state_dict, resolve_checkpoint
from .devices import resolve_device

log = logging.getLogger(__name__)


def resolve_config(model: Union[str, SegmentorConfig, Mapping]) -> SegmentorConfig:
    """A registry name, a ``SegmentorConfig``, or an official mmseg model dict."""
    if isinstance(model, SegmentorConfig):
        return model
    if isinstance(model, Mapping):
        return config_from_mmseg(model)
    return get_model_config(str(model))


def build_segmentor(
    model: Union[str, SegmentorConfig, Mapping],
    checkpoint: Optional[PathLike] = None,
    device: Union[str, torch.device] = "auto",
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    offline: Optional[bool] = None,
    dcnv3_backend: str = "auto",
) -> EncoderDecoder:
    """Build a segmentor in eval mode.

    ``model``: one of the nine names (``list_models()``), a ``SegmentorConfig`` or an official mmseg
    model dict. ``checkpoint``: None (random weights), a local ``.pth`` path, ``"hub"`` (the model's
    released file on the Hugging Face hub) or ``"hf://owner/repo/file[@revision]"``. The checkpoint is
    loaded strictly: any missing, unexpected or mis-shaped key raises ``CheckpointError``.
    ``forward(x)`` takes normalized ``[N, 3, H, W]`` and returns logits ``[N, C, H, W]``.
    """
    cfg = resolve_config(model)
    target = resolve_device(device)
    if checkpoint is None:
        log.warning("%s built with random weights (no checkpoint given)", cfg.name)
        segmentor = EncoderDecoder(cfg).to(target)
    else:
        path = resolve_checkpoint(checkpoint, cfg.pretrained, revision, cache_dir, offline)
        state_dict = read_state_dict(path)
        # Every tensor comes from the checkpoint (checked strictly), so skip the random init:
        # build on the meta device and allocate directly on the target.
        with torch.device("meta"):
            segmentor = EncoderDecoder(cfg)
        check_state_dict(segmentor, state_dict, source=f"checkpoint {path}")
        segmentor = segmentor.to_empty(device=target)
        segmentor.load_state_dict(state_dict, strict=True)
        log.info("loaded %s from %s", cfg.name, path)
    segmentor.set_dcnv3_backend(dcnv3_backend)
    return segmentor.eval()


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
