"""Cityscapes semantic segmentation with InternImage (UperNet / SegFormer heads), for ROS 2 and offline use.

The core (models, inference, evaluation) imports without ROS; the node lives in
``cityscapes_seg_ros.node`` and needs rclpy.
"""

import os
import sys

from .builder import build_segmentor, count_parameters, resolve_device
from .checkpoint import CheckpointError, read_state_dict, resolve_checkpoint
from .inference import Prediction, Predictor, preprocess, scores_to_train_ids
from .models import MODEL_REGISTRY, EncoderDecoder, SegmentorConfig, get_model_config, list_models

__version__ = "0.1.0"

# The generated message modules (``cityscapes_seg_ros.msg``): in a colcon install they sit in this package's
# own directory; scripts/build_msgs.sh (no ROS 2 distro, pip install) puts them beside the environment.
_GENERATED_MESSAGES = os.path.join(sys.prefix, "lib", "cityscapes_seg_ros_msgs", __name__)
if os.path.isdir(_GENERATED_MESSAGES) and _GENERATED_MESSAGES not in __path__:
    __path__.append(_GENERATED_MESSAGES)

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
