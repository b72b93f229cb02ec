"""A minimal segmentation node with the real node's interface, for the live-evaluation tests.

It is what ``evaluate`` needs from ``cityscapes_seg_ros.node`` and nothing more: parameters ``image_topics``,
``input_transport``, ``model`` (a config file), ``checkpoint``, ``device``, ``img_scale``; for each camera
``<ns>/<name>`` it publishes ``<ns>/segmentation/labels`` (mono8 train ids, the input's header) and
``<ns>/segmentation/color``, both reliable. ``skip_every`` > 0 drops every n-th frame (a node falling behind).

    python -m bag_standin_node --ros-args -p image_topics:="['/cam/front/image_raw']" -p model:=tiny.yaml ...
"""

import sys

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from cityscapes_seg_ros import Predictor, build_segmentor
from cityscapes_seg_ros.bag.bagio import typestore
from cityscapes_seg_ros.ros_contract.image_codec import image_msg_to_bgr
from cityscapes_seg_ros.bag.ros import reliable_qos
from cityscapes_seg_ros.model_options import parse_scale, read_model_config
from cityscapes_seg_ros.visualize import colorize


class StandInNode(Node):
    def __init__(self) -> None:
        super().__init__("standin_segmentation")
        topics = self.declare_parameter("image_topics", ["/cam/front/image_raw"]).value
        transport = self.declare_parameter("input_transport", "raw").value
        model = self.declare_parameter("model", "").value
        checkpoint = self.declare_parameter("checkpoint", "").value or None
        device = self.declare_parameter("device", "cpu").value
        scale = parse_scale(self.declare_parameter("img_scale", "2048x1024").value)
        self.skip_every = self.declare_parameter("skip_every", 0).value
        self.predictor = Predictor(build_segmentor(read_model_config(model), checkpoint, device), img_scale=scale)
        self.store, self.count = typestore(), 0
        self.outputs = []
        for topic in topics:
            namespace = topic.rsplit("/", 1)[0]
            labels = self.create_publisher(Image, f"{namespace}/segmentation/labels", reliable_qos(10))
            color = self.create_publisher(Image, f"{namespace}/segmentation/color", reliable_qos(10))
            msg_type, name = (CompressedImage, f"{topic}/compressed") if transport == "compressed" else (Image, topic)
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
