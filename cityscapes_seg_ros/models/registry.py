"""The nine InternImage Cityscapes models of the official model zoo, by their official config names.

Each entry holds the hyper-parameters of the official config (after ``_base_`` merging) and where
its released checkpoint lives. ``num_classes`` is 150 in every official config (an ADE20K
leftover), so the released heads have 150 output channels; only the first 19 are Cityscapes.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

from .heads import FCNHeadConfig, SegformerHeadConfig, UPerHeadConfig
from .internimage import InternImageConfig, internimage_config_from_mmseg
from .segmentor import HF_REPO_ID, HubLocation, SegmentorConfig

OFFICIAL_NUM_CLASSES = 150

# size: channels, depths, groups, offset_scale, post_norm
_BACKBONES: Dict[str, InternImageConfig] = {
    "t": InternImageConfig(64, (4, 4, 18, 4), (4, 8, 16, 32), offset_scale=1.0, post_norm=False),
    "s": InternImageConfig(80, (4, 4, 21, 4), (5, 10, 20, 40), offset_scale=1.0, post_norm=True),
    "b": InternImageConfig(112, (4, 4, 21, 4), (7, 14, 28, 56), offset_scale=1.0, post_norm=True),
    "l": InternImageConfig(160, (5, 5, 22, 5), (10, 20, 40, 80), offset_scale=2.0, post_norm=True),
    "xl": InternImageConfig(192, (5, 5, 24, 5), (12, 24, 48, 96), offset_scale=2.0, post_norm=True),
}


def _upernet(size: str, schedule: str, published: Tuple[float, float]) -> SegmentorConfig:
    backbone = _BACKBONES[size]
    stages = backbone.stage_channels
    name = f"upernet_internimage_{size}_512x1024_160k_{schedule}"
    return SegmentorConfig(
        name=name,
        backbone=backbone,
        decode_head=UPerHeadConfig(in_channels=stages, channels=512, num_classes=OFFICIAL_NUM_CLASSES),
        auxiliary_head=FCNHeadConfig(in_channels=stages[2], channels=256, num_classes=OFFICIAL_NUM_CLASSES),
        pretrained=HubLocation(HF_REPO_ID, f"{name}.pth"),
        published_miou=published,
    )


def _segformer(size: str, published: Tuple[float, float]) -> SegmentorConfig:
    backbone = _BACKBONES[size]
    name = f"segformer_internimage_{size}_512x1024_160k_mapillary2cityscapes"
    return SegmentorConfig(
        name=name,
        backbone=backbone,
        decode_head=SegformerHeadConfig(
            in_channels=backbone.stage_channels, channels=256, num_classes=OFFICIAL_NUM_CLASSES
        ),
        pretrained=HubLocation(HF_REPO_ID, f"{name}.pth"),
        published_miou=published,
    )


MODEL_REGISTRY: Dict[str, SegmentorConfig] = {
    cfg.name: cfg
    for cfg in (
        _upernet("t", "cityscapes", (82.58, 83.40)),
        _upernet("s", "cityscapes", (82.74, 83.45)),
        _upernet("b", "cityscapes", (83.18, 83.97)),
        _upernet("l", "cityscapes", (83.68, 84.41)),
        _upernet("xl", "cityscapes", (83.62, 84.28)),
        _upernet("l", "mapillary2cityscapes", (85.94, 86.22)),
        _upernet("xl", "mapillary2cityscapes", (86.20, 86.42)),
        _segformer("l", (85.16, 85.67)),
        _segformer("xl", (85.41, 85.93)),
    )
}


def list_models() -> List[str]:
    return list(MODEL_REGISTRY)


def get_model_config(name: str) -> SegmentorConfig:
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(MODEL_REGISTRY)}") from None


def config_from_mmseg(model: Mapping, name: str = "custom") -> SegmentorConfig:
    """Build a config from an official mmseg ``model=dict(type='EncoderDecoder', ...)`` (after ``_base_``)."""
    if model.get("type", "EncoderDecoder") != "EncoderDecoder":
        raise ValueError(f"only EncoderDecoder segmentors are supported, got {model.get('type')!r}")
    backbone = internimage_config_from_mmseg(model["backbone"])
    head = dict(model["decode_head"])
    head_type = head.get("type")
    if head_type == "UPerHead":
        decode_head = UPerHeadConfig(
            in_channels=tuple(head["in_channels"]),
            channels=int(head["channels"]),
            num_classes=int(head["num_classes"]),
            pool_scales=tuple(head.get("pool_scales", (1, 2, 3, 6))),
        )
    elif head_type == "SegformerHead":
        decode_head = SegformerHeadConfig(
            in_channels=tuple(head["in_channels"]), channels=int(head["channels"]), num_classes=int(head["num_classes"])
        )
    else:
        raise ValueError(f"decode head {head_type!r} is not supported (UPerHead, SegformerHead)")
    if tuple(head.get("in_index", range(len(decode_head.in_channels)))) != tuple(range(len(decode_head.in_channels))):
        raise ValueError(f"decode head in_index {head['in_index']} is not supported (all levels in order)")
    auxiliary_head = None
    aux = model.get("auxiliary_head")
    if aux:
        if aux.get("type") != "FCNHead" or aux.get("concat_input", True):
            raise ValueError("only an FCNHead auxiliary head with concat_input=False is supported")
        auxiliary_head = FCNHeadConfig(
            in_channels=int(aux["in_channels"]),
            in_index=int(aux.get("in_index", 2)),
            channels=int(aux["channels"]),
            num_classes=int(aux["num_classes"]),
            num_convs=int(aux.get("num_convs", 2)),
        )
    return SegmentorConfig(name=name, backbone=backbone, decode_head=decode_head, auxiliary_head=auxiliary_head)
