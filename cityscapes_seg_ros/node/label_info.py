"""The class map as ``vision_msgs/LabelInfo`` (train id -> name, 255 "unlabeled") on ``segmentation/label_info``.

Published once per camera on a transient-local topic, so a subscriber that joins later still receives it (as
with a latched CameraInfo). vision_msgs is optional: LabelInfo arrived in vision_msgs 4.1 (Humble's updates from
2023, Jazzy, Kilted); without it the topic is not offered.
"""

from __future__ import annotations

from typing import Any, Optional

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..labels import IGNORE_TRAIN_ID, TRAIN_CLASS_NAMES

try:
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # vision_msgs not installed, or older than 4.1
    LabelInfo = VisionClass = None

UNLABELED_NAME = "unlabeled"
# Every publisher of the class map keeps its last message for subscribers that join later.
LABEL_INFO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    reliability=ReliabilityPolicy.RELIABLE,
)


def label_info_message(stamp: Any, frame_id: str = "") -> Optional[Any]:
    """The class map: train ids 0..18 with their Cityscapes names and 255 "unlabeled"; None without vision_msgs.

    ``threshold`` is 0: every pixel gets its arg-max class, no confidence cut-off is applied.
    """
    if LabelInfo is None:
        return None
    message = LabelInfo(threshold=0.0)
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    names = [*enumerate(TRAIN_CLASS_NAMES), (IGNORE_TRAIN_ID, UNLABELED_NAME)]
    message.class_map = [VisionClass(class_id=class_id, class_name=name) for class_id, name in names]
    return message
