"""Cityscapes semantic segmentation with InternImage (UperNet / SegFormer heads), for ROS 2 and offline use.

The core (models, inference, evaluation) imports without ROS; the node lives in
``cityscapes_seg_ros.node`` and needs rclpy. Importing this package imports neither torch nor rclpy:
the names below load their module on first use, so the evaluator and the message modules stay light.
"""

from __future__ import annotations

import os
import sys

from .lazy_exports import lazy_exports

__version__ = "0.1.0"

# The generated message modules (``cityscapes_seg_ros.msg``): in a colcon install they sit in this package's
# own directory; scripts/build_msgs.sh (no ROS 2 distro, pip install) puts them beside the environment.
_GENERATED_MESSAGES = os.path.join(sys.prefix, "lib", "cityscapes_seg_ros_msgs", __name__)
if os.path.isdir(_GENERATED_MESSAGES) and _GENERATED_MESSAGES not in __path__:
    __path__.append(_GENERATED_MESSAGES)

_EXPORTS = {  # module -> the names it hands on
    "segmenter": (
        "build_segmentor",
        "count_parameters",
        "resolve_device",
        "CheckpointError",
        "read_state_dict",
        "resolve_checkpoint",
        "Prediction",
        "Predictor",
        "preprocess",
        "scores_to_train_ids",
    ),
    "models": ("MODEL_REGISTRY", "EncoderDecoder", "SegmentorConfig", "get_model_config", "list_models"),
}
_LAZY = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
