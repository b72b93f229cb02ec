"""Per-frame overhead of cityscapes_seg_node apart from the network, for a 2048x1024 bgr8 camera on the CPU.

Stages, each timed alone on the node's own functions (median of --runs after a warm-up):
  receive      deserialize the sensor_msgs/Image (what rclpy does when a message is taken)
  convert      image_msg_to_bgr (a zero-copy view for bgr8)
  preprocess   the official resize + normalisation (inference.preprocess) into the network's input
  decode       train ids and confidence from the logits at the image's size (ops.decode_scores), for the
               released checkpoints' 150-channel head
  color        palette lookup
  overlay      BGR->RGB and the blend of the colour mask over the image
  statistics   bincount of labels and confidence, ClassStatistics message filled
  publish      labels, color, overlay Image messages built and published, and a ready statistics message
The network and the logits' resize to the image size (Predictor.encode_decode) are not included.
Below the table, the decision as the node made it before (torch softmax, then max over the classes) and
as it makes it now, side by side, for 19 and 150 classes.

    .venv/bin/python benchmarks/node_overhead_bench.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import platform

import cv2
import numpy as np
import rclpy
import torch
from bench_common import median_ms
from cityscapes_seg_ros.msg import ClassStatistics
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from cityscapes_seg_ros.node.pipeline import FrameResult
from cityscapes_seg_ros.node.statistics import count_classes
from cityscapes_seg_ros.node.statistics_message import statistics_message
from cityscapes_seg_ros.ops.score_decode import decode_scores
from cityscapes_seg_ros.ros_contract.image_codec import image_msg_to_bgr, to_image_msg
from cityscapes_seg_ros.ros_contract.topics import IMAGE_OUTPUTS
from cityscapes_seg_ros.segmenter.inference import preprocess
from cityscapes_seg_ros.visualize import colorize, overlay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rng = np.random.default_rng(0)
    height, width = 1024, 2048
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    logits = {classes: torch.randn(classes, height, width) * 4 for classes in (19, 150)}
    train_ids_t, confidence_t = decode_scores(logits[150], from_logits=True)
    train_ids, confidence = train_ids_t.numpy(), confidence_t.numpy()

    rclpy.init()
    node = Node("node_overhead_bench")
    publishers = {kind: node.create_publisher(Image, f"/bench/segmentation/{kind}", 2) for kind in IMAGE_OUTPUTS}
    stats_pub = node.create_publisher(ClassStatistics, "/bench/segmentation/statistics", 2)
    wire = serialize_message(to_image_msg(image, "bgr8"))
    msg = deserialize_message(wire, Image)
    color = colorize(train_ids)
    blended = overlay(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), train_ids, 0.5, color=color)

    def statistics_stage() -> ClassStatistics:
        counts, sums = count_classes(train_ids, confidence)
        result = FrameResult(train_ids, confidence, color, blended, counts, sums)
        return statistics_message(msg.header, "bench", (height, width), result)

    statistics_msg = statistics_stage()

    def publish_stage() -> None:
        publishers["labels"].publish(to_image_msg(train_ids, "mono8", msg.header))
        publishers["color"].publish(to_image_msg(color, "rgb8", msg.header))
        publishers["overlay"].publish(to_image_msg(blended, "rgb8", msg.header))
        stats_pub.publish(statistics_msg)

    stages = {
        "receive": lambda: deserialize_message(wire, Image),
        "convert": lambda: image_msg_to_bgr(msg),
        "preprocess": lambda: preprocess(image),
        "decode": lambda: decode_scores(logits[150], from_logits=True),
        "color": lambda: colorize(train_ids),
        "overlay": lambda: overlay(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), train_ids, 0.5, color=color),
        "statistics": statistics_stage,
        "publish": publish_stage,
    }
    results = {name: median_ms(fn, args.runs) for name, fn in stages.items()}
    decisions = {
        classes: (
            median_ms(lambda: torch.softmax(scores, dim=0).max(dim=0), max(3, args.runs // 4)),
            median_ms(lambda: decode_scores(scores, from_logits=True), args.runs),
        )
        for classes, scores in logits.items()
    }
    node.destroy_node()
    rclpy.shutdown()

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(
        f"2048x1024 bgr8, median of {args.runs}; {cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, Python {platform.python_version()}"
    )
    print("| stage | ms |\n|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.2f} |")
    total = sum(results.values())
    without_pre = total - results["preprocess"] - results["decode"]
    print(f"| **total** | **{total:.2f}** |")
    print(f"| total without preprocess and decode | {without_pre:.2f} |")
    print("\n| classes | torch softmax + max, ms | ops.decode_scores, ms | speed-up |\n|---|---|---|---|")
    for classes, (before, now) in decisions.items():
        print(f"| {classes} | {before:.1f} | {now:.1f} | {before / now:.1f}x |")


if __name__ == "__main__":
    main()
