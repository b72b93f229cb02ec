"""``cityscapes-seg-bag replay``: a bag published into the ROS graph, received by a real rclpy subscriber
in another process (the test), with the bag's order and timing, remapping and /clock."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.bag_support import make_bag, make_split

rclpy = pytest.importorskip("rclpy", reason="needs the ROS 2 wheels (ros-rclpy, ros-rmw-fastrtps-cpp)")

from cityscapes_seg_ros.bag.bagio import header_stamp_ns, iter_images  # noqa: E402
from cityscapes_seg_ros.harness.ros import reliable_qos, ros_node, wait_until  # noqa: E402

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

SCRIPT = Path(sys.executable).parent / "cityscapes-seg-bag"


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    make_split(root)  # 4 frames, one per second of bag time
    return make_bag(root, root / "bag", "--rate", "1")


class Received:
    """Messages of one topic, as raw CDR bytes with their receive time."""

    def __init__(self, node, msg_type, topic):
        self.items, self.lock = [], threading.Lock()
        node.create_subscription(msg_type, topic, self.on_message, reliable_qos(50), raw=True)

    def on_message(self, data):
        with self.lock:
            self.items.append((time.monotonic(), data))

    def __len__(self):
        with self.lock:
            return len(self.items)


def test_replay_keeps_order_and_timing_with_remap_and_clock(bag):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    with ros_node("replay_test_listener", spin=True) as (node, _):
        images = Received(node, Image, "/remapped/image")
        original = Received(node, Image, "/cam/front/image_raw")
        clocks = []
        node.create_subscription(
            Clock, "/clock", lambda m: clocks.append(m.clock.sec * 10**9 + m.clock.nanosec), reliable_qos(100)
        )
        started = time.monotonic()
        process = subprocess.run(
            [
                str(SCRIPT),
                "replay",
                str(bag),
                "--rate",
                "4",
                "--topics",
                "/cam/front/image_raw",
                "--remap",
                "/cam/front/image_raw:=/remapped/image",
                "--clock",
                "50",
                "--wait-for-subscribers",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert process.returncode == 0, process.stderr
        assert wait_until(lambda: len(images) == 4, 10), f"received {len(images)} of 4 images"
        elapsed = time.monotonic() - started

    expected = [stamp for stamp, _ in iter_images(bag, "/cam/front/image_raw")]
    stamps = [header_stamp_ns(data) for _, data in images.items]
    assert stamps == expected  # every frame, in bag order
    arrivals = np.array([t for t, _ in images.items])
    # Paced by bag time at rate 4: 3 s of bag time from the first frame to the last take ~0.75 s, not ~0 s (unpaced)
    # nor 3 s (rate 1). Wide bounds: delivery on a loaded machine delays single frames by a varying amount.
    span = arrivals[-1] - arrivals[0]
    assert 0.375 < span < 3.0, np.diff(arrivals)
    assert elapsed > span
    assert len(original) == 0  # remapped: nothing on the bag's own name
    assert clocks, "no /clock published"
    assert expected[0] <= min(clocks) and max(clocks) <= expected[-1]
    assert clocks == sorted(clocks)


def test_a_gate_paces_the_replay_instead_of_bag_time(bag):
    """``evaluate --lockstep``'s pacing: each message waits for the gate, not for its time in the bag."""
    from cityscapes_seg_ros.bag.replay import BagPlayer, ReplayOptions

    calls = []
    with ros_node("replay_test_gate") as (node, _):
        options = ReplayOptions(rate=0.001, topics=["/cam/front/image_raw"])  # bag time alone: 3000 s
        player = BagPlayer(
            node,
            bag,
            options,
            on_publish=lambda topic, data, _ns: calls.append(header_stamp_ns(data)),
            gate=lambda topic: calls.append(topic),
        )
        assert player.play().published == 4
    expected = [stamp for stamp, _ in iter_images(bag, "/cam/front/image_raw")]
    assert calls == [item for stamp in expected for item in ("/cam/front/image_raw", stamp)]


def test_replay_start_offset_and_loop(bag):
    from sensor_msgs.msg import Image

    expected = [stamp for stamp, _ in iter_images(bag, "/cam/front/image_raw")]
    with ros_node("replay_test_loop", spin=True) as (node, _):
        images = Received(node, Image, "/cam/front/image_raw")
        process = subprocess.Popen(
            [
                str(SCRIPT),
                "replay",
                str(bag),
                "--rate",
                "20",
                "--loop",
                "--start",
                "2",
                "--topics",
                "/cam/front/image_raw",
                "--wait-for-subscribers",
                "30",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_until(lambda: len(images) >= 6, 60), f"received {len(images)} images"
        finally:
            process.terminate()
            process.wait(timeout=30)
    stamps = [header_stamp_ns(data) for _, data in images.items[:6]]
    assert stamps == expected[2:] * 3  # from 2 s on, over and over


def test_replay_of_an_unknown_topic_fails_naming_the_topics(bag):
    process = subprocess.run(
        [str(SCRIPT), "replay", str(bag), "--topics", "/nope"], capture_output=True, text=True, timeout=60
    )
    assert process.returncode == 2
    assert "/nope" in process.stderr and "/cam/front/image_raw" in process.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--rate", "nan"], "--rate"),  # used to sleep forever
        (["--rate", "0"], "--rate"),
        (["--start", "nan"], "--start"),
        (["--clock", "inf"], "--clock"),
        (["--remap", "/cam/front/image_raw:=bad name"], "bad name"),  # used to be an rclpy traceback
        (["--remap", "/cam/front/image_raw:=/x", "--remap", "/cam/front/camera_info:=/x"], "/x"),
    ],
)
def test_bad_arguments_are_one_line_errors(bag, args, words):
    process = subprocess.run([str(SCRIPT), "replay", str(bag), *args], capture_output=True, text=True, timeout=60)
    assert process.returncode == 2
    assert words in process.stderr and "Traceback" not in process.stderr
    assert len(process.stderr.strip().splitlines()) == 1, process.stderr
