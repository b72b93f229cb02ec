"""InternImage segmentors: backbone, heads and the registry of the nine Cityscapes models."""

from .heads import FCNHeadConfig, SegformerHeadConfig, UPerHeadConfig
from .internimage import InternImage, InternImageConfig
from .registry import MODEL_REGISTRY, config_from_mmseg, get_model_config, list_models
from .segmentor import EncoderDecoder, HubLocation, SegmentorConfig

__all__ = [
    "EncoderDecoder",
    "FCNHeadConfig",
    "HubLocation",
    "InternImage",
    "InternImageConfig",
    "MODEL_REGISTRY",
    "SegformerHeadConfig",
    "SegmentorConfig",
    "UPerHeadConfig",
    "config_from_mmseg",
    "get_model_config",
    "list_models",
]
