"""Test helpers for the node tests: a probe node that publishes inputs and collects outputs (real rclpy)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any, Callable, Dict, List

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from cityscapes_seg_ros.ros_contract.image_codec import to_image_msg

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class Probe:
    """A node spun in a background thread; ``received[topic]`` lists the messages that arrived."""

    def __init__(self, context: Any, name: str = "probe") -> None:
        self.node = Node(name, context=context)
        self.received: Dict[str, List[Any]] = defaultdict(list)
        self._lock = threading.Lock()
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def listen(self, msg_type: type, topic: str, qos: QoSProfile = RELIABLE) -> None:
        def store(msg: Any) -> None:
            with self._lock:
                self.received[topic].append(msg)

        self.node.create_subscription(msg_type, topic, store, qos)

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile = RELIABLE) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    def messages(self, topic: str) -> List[Any]:
        with self._lock:
            return list(self.received[topic])

    def wait_for(
        self,
        condition: Callable[[], bool],
        timeout: float = 60.0,
        publish: Callable[[], None] | None = None,
        every: float = 0.5,
    ) -> bool:
        """Wait until ``condition()`` holds; ``publish()`` is called every ``every`` s meanwhile (discovery)."""
        deadline = time.monotonic() + timeout
        next_publish = 0.0
        while time.monotonic() < deadline:
            if condition():
                return True
            if publish is not None and time.monotonic() >= next_publish:
                publish()
                next_publish = time.monotonic() + every
            time.sleep(0.02)
        return condition()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def bgr_msg(image: np.ndarray, frame_id: str = "camera", stamp_sec: int = 1, stamp_nanosec: int = 0) -> Image:
    msg = to_image_msg(image, "bgr8")
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_sec, stamp_nanosec
    return msg


def make_context(args: List[str] | None = None) -> Any:
    context = rclpy.Context()
    rclpy.init(args=args, context=context)
    return context
