"""Packaging: the core imports without ROS; package.xml is a valid format-3 ROS 2 manifest."""

import subprocess
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]


def test_core_imports_without_ros():
    code = (
        "import sys, cityscapes_seg_ros, cityscapes_seg_ros.segmenter.inference, cityscapes_seg_ros.cli.main\n"
        "assert not any(m.startswith(('rclpy.', 'sensor_msgs', 'std_msgs')) for m in sys.modules), 'ROS imported'\n"
    )
    # rclpy is made unimportable (an import of it raises ImportError) to prove the core does not need it.
    blocker = "import sys; sys.modules['rclpy'] = None\n"
    result = subprocess.run([sys.executable, "-c", blocker + code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_package_xml_is_valid_format_3_with_ros_dependencies():
    package = parse_package(str(ROOT / "package.xml"))
    package.validate()
    assert package.package_format == 3 and package.name == "cityscapes_seg_ros"
    exec_deps = {d.name for d in package.exec_depends}
    assert {"rclpy", "sensor_msgs", "std_msgs"} <= exec_deps
