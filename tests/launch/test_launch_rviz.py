"""config/cityscapes_seg.rviz, the view `ros2 launch ... rviz:=true` opens: it shows the default camera's input
and the node's outputs whatever QoS they are published with, and names a fixed frame."""

from pathlib import Path

import pytest
import yaml

from cityscapes_seg_ros.node.params import SPECS
from cityscapes_seg_ros.ros_contract.topics import output_topic

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

RVIZ_CONFIG = Path(__file__).resolve().parents[2] / "config" / "cityscapes_seg.rviz"


def _config() -> dict:
    return yaml.safe_load(RVIZ_CONFIG.read_text())


def _image_displays(config: dict) -> list:
    return [d for d in config["Visualization Manager"]["Displays"] if d["Class"] == "rviz_default_plugins/Image"]


def test_every_image_view_subscribes_best_effort():
    displays = _image_displays(_config())
    assert displays
    for display in displays:
        qos = display["Topic"]
        # Best effort receives both best-effort (sensor-data) and reliable publishers; reliable only the latter.
        assert qos["Reliability Policy"] == "Best Effort", display["Name"]
        assert qos["Durability Policy"] == "Volatile", display["Name"]


def test_the_views_show_the_default_camera_and_the_nodes_outputs():
    (camera,) = SPECS["image_topics"].default
    topics = [display["Topic"]["Value"] for display in _image_displays(_config())]
    assert topics == [camera, output_topic(camera, "color"), output_topic(camera, "overlay")]


def test_the_fixed_frame_is_set():
    fixed_frame = _config()["Visualization Manager"]["Global Options"]["Fixed Frame"]
    assert isinstance(fixed_frame, str) and fixed_frame.strip()
    assert f"Fixed Frame: {fixed_frame}" in RVIZ_CONFIG.read_text().split("Panels:")[0]  # the reason is written
