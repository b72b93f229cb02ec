"""package.xml lists what the package imports at run time (rosdep keys), keeps rviz2 optional, and colcon test
runs the test suite (CMakeLists.txt registers tests/ with ament_cmake_pytest)."""

import ast
import re
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_SOURCES = [*sorted((ROOT / "cityscapes_seg_ros").rglob("*.py")), *sorted((ROOT / "launch").glob("*.py"))]

# Imported top-level module -> its rosdep key (ros/rosdistro rosdep/python.yaml, or the ROS package's own name).
ROSDEP_KEYS = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "sensor_msgs": "sensor_msgs",
    "std_msgs": "std_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "rosgraph_msgs": "rosgraph_msgs",
    "vision_msgs": "vision_msgs",
    "lifecycle_msgs": "lifecycle_msgs",
    "ament_index_python": "ament_index_python",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "torch": "python3-torch",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "PIL": "python3-pil",
    "matplotlib": "python3-matplotlib",
    "huggingface_hub": "python3-huggingface-hub-pip",
    "rosbags": "python3-rosbags-pip",
}
# Imported modules with no key of their own: named in a package.xml comment (pip install), or installed with
# the package that names them.
NO_ROSDEP_KEY = {"deflate", "onnx", "onnxscript", "onnxruntime", "onnxruntime_extensions"}
COVERED_BY = {
    "lz4": "rosbags",  # rosbags' MCAP/rosbag2 compression, a dependency of rosbags
    "zstandard": "rosbags",
    "compression": "stdlib",  # Python 3.14's compression.zstd, tried before zstandard
}


def imported_top_level_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def third_party_imports() -> dict[str, list[str]]:
    """Every non-stdlib module the package and its launch file import, with the files importing it."""
    found: dict[str, list[str]] = {}
    for path in RUNTIME_SOURCES:
        for module in imported_top_level_modules(path):
            if module in sys.stdlib_module_names or module in ("cityscapes_seg_ros", "__future__"):
                continue
            found.setdefault(module, []).append(str(path.relative_to(ROOT)))
    return found


def package():
    manifest = parse_package(str(ROOT / "package.xml"))
    manifest.validate()
    return manifest


def test_the_import_scan_sees_the_node_and_launch_imports():
    imports = third_party_imports()
    assert {"rclpy", "torch", "sensor_msgs", "launch_ros"} <= set(imports)


def test_every_runtime_import_has_a_run_dependency_in_package_xml():
    imports = third_party_imports()
    unknown = sorted(set(imports) - set(ROSDEP_KEYS) - NO_ROSDEP_KEY - set(COVERED_BY))
    assert not unknown, (
        f"imported without a known rosdep key: {unknown} ({[imports[m][0] for m in unknown]}); add the key to "
        "package.xml and to ROSDEP_KEYS"
    )
    exec_keys = {dependency.name for dependency in package().exec_depends}
    missing = sorted({ROSDEP_KEYS[m] for m in imports if m in ROSDEP_KEYS} - exec_keys)
    # lifecycle_msgs comes with rclpy (rclpy.lifecycle imports it), so rclpy's key covers it when not listed.
    missing = [key for key in missing if not (key == "lifecycle_msgs" and "rclpy" in exec_keys)]
    assert not missing, f"package.xml lacks exec_depend/depend for {missing}"


def test_modules_without_a_rosdep_key_are_named_in_package_xml():
    text = (ROOT / "package.xml").read_text(encoding="utf-8")
    comments = " ".join(re.findall(r"<!--(.*?)-->", text, flags=re.S))
    for module in NO_ROSDEP_KEY & set(third_party_imports()):
        assert module in comments, f"{module} has no rosdep key: say so (pip install) in a package.xml comment"


def test_rviz2_is_not_a_run_dependency():
    manifest = package()
    run_keys = {d.name for d in [*manifest.exec_depends, *manifest.build_export_depends]}
    assert "rviz2" not in run_keys


def test_colcon_test_runs_the_installed_package_tests():
    manifest = package()
    assert "ament_cmake_pytest" in {d.name for d in manifest.test_depends}
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    testing = re.search(r"if\(BUILD_TESTING\)(.*?)endif\(\)", cmake, flags=re.S)
    assert testing, "CMakeLists.txt registers no tests under BUILD_TESTING"
    assert "find_package(ament_cmake_pytest REQUIRED)" in testing.group(1)
    registered = re.search(r"ament_add_pytest_test\(\s*\S+\s+(\S+)", testing.group(1))
    assert registered and (ROOT / registered.group(1)).resolve() == ROOT / "tests" / "colcon"
    assert "CITYSCAPES_SEG_COLCON_PREFIX=" in testing.group(1)  # tests/colcon/ skip without it
