"""The ``ros`` marker is declared per module: a test module that uses rclpy, ROS messages or the node carries it,
so that CI's second run on the Jazzy wheels (``pytest -m ros``, .ci/run) does not miss it."""

import re
from pathlib import Path

from support import TESTS

ROS_SOURCE = re.compile(r"\brclpy\b|\b\w+_msgs\.(?:msg|srv)\b|\bcityscapes_seg_ros\.(?:msg|node)\b|\bros_probe\b")
MARKED = re.compile(r"^pytestmark = .*\bpytest\.mark\.ros\b", re.MULTILINE)


def test_every_module_using_ros_is_marked():
    modules = [path for path in sorted(TESTS.glob("*/test_*.py")) if path != Path(__file__).resolve()]  # not itself
    sources = {path: path.read_text(encoding="utf-8") for path in modules}
    using_ros = [path for path, text in sources.items() if ROS_SOURCE.search(text)]
    unmarked = [str(path.relative_to(TESTS)) for path in using_ros if not MARKED.search(sources[path])]
    assert unmarked == [], "add `pytestmark = pytest.mark.ros` to these modules"


def test_the_ros_marker_is_declared(pytestconfig):
    assert any(line.startswith("ros:") for line in pytestconfig.getini("markers"))
