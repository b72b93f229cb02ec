"""Cityscapes semantic segmentation with InternImage (UperNet / SegFormer heads), for ROS 2 and offline use.

The core (models, inference, evaluation) imports without ROS; the node lives in
``cityscapes_seg_ros.node`` and needs rclpy.
"""

from .builder import build_segmentor, count_parameters, resolve_device
from .checkpoint import CheckpointError, read_state_dict, resolve_checkpoint
from .inference import Prediction, Predictor, preprocess, scores_to_train_ids
from .models import MODEL_REGISTRY, EncoderDecoder, SegmentorConfig, get_model_config, list_models

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "EncoderDecoder",
    "MODEL_REGISTRY",
    "Prediction",
    "Predictor",
    "SegmentorConfig",
    "build_segmentor",
    "count_parameters",
    "get_model_config",
    "list_models",
    "preprocess",
    "read_state_dict",
    "resolve_checkpoint",
    "resolve_device",
    "scores_to_train_ids",
]
