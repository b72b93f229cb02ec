"""A minimal segmentation node with the real node's interface, for the live-evaluation tests.

It declares the real node's parameters (``cityscapes_seg_ros.node.params``: same names, defaults, types and
checks) and uses what ``evaluate`` needs: the model options (``model``, ``checkpoint``, ``device``,
``inference_size``, ...), ``image_topics`` and ``input_transport``; the others are accepted and ignored. For
each camera it publishes ``<ns>/segmentation/labels`` (mono8 train ids, the input's header) and
``<ns>/segmentation/color``, both reliable. ``skip_every`` > 0 (its own) drops every n-th frame (a node
falling behind).

    PYTHONPATH=tests python -m support.bag_standin_node --ros-args \
        -p image_topics:="['/cam/front/image_raw']" -p model:=tiny.yaml ...
"""

import sys

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from cityscapes_seg_ros.bag.bagio import typestore
from cityscapes_seg_ros.harness.interrupts import stacks_on_sigusr1
from cityscapes_seg_ros.harness.ros import reliable_qos
from cityscapes_seg_ros.node.params import declare_parameters
from cityscapes_seg_ros.ros_contract.image_codec import image_msg_to_bgr
from cityscapes_seg_ros.ros_contract.topics import compressed_topic, output_topic
from cityscapes_seg_ros.segmenter.options import build_predictor
from cityscapes_seg_ros.visualize import colorize


class StandInNode(Node):
    def __init__(self) -> None:
        super().__init__("standin_segmentation")
        settings = declare_parameters(self)
        self.skip_every = self.declare_parameter("skip_every", 0).value
        self.predictor = build_predictor(settings.model_options())
        self.store, self.count = typestore(), 0
        self.outputs = []
        for topic in settings.image_topics:
            labels = self.create_publisher(Image, output_topic(topic, "labels"), reliable_qos(10))
            color = self.create_publisher(Image, output_topic(topic, "color"), reliable_qos(10))
            compressed = settings.input_transport == "compressed"
            msg_type, name = (CompressedImage, compressed_topic(topic)) if compressed else (Image, topic)
            callback = self.make_callback(msg_type, labels, color)
            self.outputs.append(self.create_subscription(msg_type, name, callback, reliable_qos(10), raw=True))

    def make_callback(self, msg_type, labels, color):
        type_name = f"sensor_msgs/msg/{msg_type.__name__}"

        def on_image(data: bytes) -> None:
            self.count += 1
            if self.skip_every and self.count % self.skip_every == 0:
                return
            msg = self.store.deserialize_cdr(data, type_name)
            train_ids = self.predictor.predict(image_msg_to_bgr(msg)).train_ids
            labels.publish(self.image(msg.header, train_ids, "mono8"))
            color.publish(self.image(msg.header, colorize(train_ids), "rgb8"))

        return on_image

    @staticmethod
    def image(header, array: np.ndarray, encoding: str) -> Image:
        out = Image()
        out.header.stamp.sec, out.header.stamp.nanosec = header.stamp.sec, header.stamp.nanosec
        out.header.frame_id = header.frame_id
        out.height, out.width = array.shape[:2]
        out.encoding, out.step = encoding, array.strides[0]
        out.data = np.ascontiguousarray(array).tobytes()
        return out


def main() -> None:
    stacks_on_sigusr1()
    rclpy.init(args=sys.argv)
    node = StandInNode()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
