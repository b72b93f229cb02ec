"""Topic names and message types of the segmentation node's interface.

For a camera image topic ``<ns>/<name>`` (``/cam/front/image_raw``) the node reads ``<ns>/<name>`` (raw) or
``<ns>/<name>/compressed`` and ``<ns>/camera_info``, and publishes every output under ``<ns>/segmentation/``.
"""

from __future__ import annotations

from typing import Dict, Tuple

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
CLASS_STATISTICS_TYPE = "cityscapes_seg_ros/msg/ClassStatistics"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)

SEGMENTATION_NAMESPACE = "segmentation"
COMPRESSED_SUFFIX = "/compressed"
INPUT_TRANSPORTS = ("raw", "compressed")

IMAGE_OUTPUTS: Tuple[str, ...] = ("labels", "color", "overlay", "confidence")
OUTPUT_KINDS: Tuple[str, ...] = IMAGE_OUTPUTS + ("statistics", "camera_info")
OUTPUT_TYPES: Dict[str, str] = {
    **{kind: IMAGE_TYPE for kind in IMAGE_OUTPUTS},
    "statistics": CLASS_STATISTICS_TYPE,
    "camera_info": CAMERA_INFO_TYPE,
}
# The class map (vision_msgs/LabelInfo, transient local, once per camera) beside the outputs; not an `outputs` choice.
LABEL_INFO = "label_info"
# Encodings of the image outputs (confidence: mono8 = probability * 255, or 32FC1 = probability).
LABELS_ENCODING = "mono8"
COLOR_ENCODING = "rgb8"
CONFIDENCE_ENCODINGS = ("mono8", "32FC1")


def camera_namespace(image_topic: str) -> str:
    """``/cam/front/image_raw`` -> ``/cam/front`` (``/image_raw`` -> ``""``)."""
    return image_topic.rstrip("/").rpartition("/")[0]


def segmentation_namespace(image_topic: str) -> str:
    """``/cam/front/image_raw`` -> ``/cam/front/segmentation``."""
    parent = camera_namespace(image_topic)
    if parent or image_topic.startswith("/"):
        return f"{parent}/{SEGMENTATION_NAMESPACE}"
    return SEGMENTATION_NAMESPACE


def output_topic(image_topic: str, kind: str) -> str:
    """``/cam/front/image_raw``, ``labels`` -> ``/cam/front/segmentation/labels``."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output {kind!r}; expected one of {', '.join(OUTPUT_KINDS)}")
    return f"{segmentation_namespace(image_topic)}/{kind}"


def label_info_topic(image_topic: str) -> str:
    """``/cam/front/image_raw`` -> ``/cam/front/segmentation/label_info``."""
    return f"{segmentation_namespace(image_topic)}/{LABEL_INFO}"


def camera_info_topic(image_topic: str) -> str:
    """``/cam/front/image_raw`` -> ``/cam/front/camera_info`` (the camera's own, the node's input)."""
    parent = camera_namespace(image_topic)
    return f"{parent}/camera_info" if parent or image_topic.startswith("/") else "camera_info"


def compressed_topic(image_topic: str) -> str:
    """The image_transport ``compressed`` topic of an image topic: ``<topic>/compressed``."""
    return image_topic.rstrip("/") + COMPRESSED_SUFFIX


def input_topic(image_topic: str, transport: str) -> str:
    """The topic the node subscribes for a camera and transport (``raw`` or ``compressed``)."""
    if transport not in INPUT_TRANSPORTS:
        raise ValueError(f"unknown input transport {transport!r}; expected one of {', '.join(INPUT_TRANSPORTS)}")
    return compressed_topic(image_topic) if transport == "compressed" else image_topic


def camera_of_input(topic: str, msgtype: str) -> Tuple[str, str]:
    """(camera image topic, transport) of a recorded input topic: ``<base>/compressed`` is the compressed one."""
    if msgtype == COMPRESSED_IMAGE_TYPE and topic.endswith(COMPRESSED_SUFFIX):
        return topic[: -len(COMPRESSED_SUFFIX)], "compressed"
    return topic, "raw"
