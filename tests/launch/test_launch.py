"""launch/segmentation.launch.py passes arguments through: the params file, then every node parameter given as
NAME:=VALUE (checked by the node, not re-parsed here), the lifecycle node behind lifecycle:=true, rviz2 behind
rviz:=true. `launch` / `launch_ros` are not on PyPI: they are stood in for by modules that record what the launch
file asks of them."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from cityscapes_seg_ros.node.__main__ import LIFECYCLE_FLAG
from cityscapes_seg_ros.node.params import SPECS

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "segmentation.launch.py"


class Recorded:
    """A launch action or substitution: the class it stands for and the arguments it was given."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __eq__(self, other):
        return type(self) is type(other) and (self.args, self.kwargs) == (other.args, other.kwargs)

    def __repr__(self):
        return f"{type(self).__name__}{self.args}{self.kwargs}"


STAND_INS = {
    "launch": ["LaunchDescription"],
    "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction"],
    "launch.substitutions": ["LaunchConfiguration"],
    "launch_ros": [],
    "launch_ros.actions": ["Node", "LifecycleNode"],
}


@pytest.fixture
def launch(monkeypatch, tmp_path):
    """(the launch file as a module, the stand-in classes by name); the package installed under an ament prefix."""
    classes = {}
    for module_name, names in STAND_INS.items():
        module = types.ModuleType(module_name)
        for name in names:
            classes[name] = type(name, (Recorded,), {})
            setattr(module, name, classes[name])
        monkeypatch.setitem(sys.modules, module_name, module)
    marker = tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "cityscapes_seg_ros"
    marker.parent.mkdir(parents=True)
    marker.touch()
    (tmp_path / "share" / "cityscapes_seg_ros").mkdir()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    spec = importlib.util.spec_from_file_location("segmentation_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, classes


def run(launch, **given):
    """The actions the launch file starts for ``ros2 launch ... NAME:=VALUE ...`` (declared defaults filled in)."""
    module, _ = launch
    description = module.generate_launch_description()
    *declared, opaque = description.args[0]
    configurations = {action.args[0]: action.kwargs["default_value"] for action in declared} | given
    context = types.SimpleNamespace(launch_configurations=configurations)
    return opaque.kwargs["function"](context)


def test_its_own_arguments_are_declared_with_the_installed_files_as_defaults(launch, tmp_path):
    module, _ = launch
    *declared, _ = module.generate_launch_description().args[0]
    defaults = {action.args[0]: action.kwargs["default_value"] for action in declared}
    share = tmp_path / "share" / "cityscapes_seg_ros"
    files = {
        "params_file": str(share / "config" / "cityscapes_seg.yaml"),
        "rviz_config": str(share / "config" / "cityscapes_seg.rviz"),
    }
    assert defaults == {**files, "namespace": "", "log_level": "info", "lifecycle": "false", "rviz": "false"}


def test_given_node_parameters_pass_through_over_the_params_file(launch):
    _, classes = launch
    given = {"image_topics": "['/cam/front/image_raw']", "device": "cuda", "use_sim_time": "true"}
    (node,) = run(launch, **given, some_parent_launch_setting="x")
    configuration = classes["LaunchConfiguration"]
    assert type(node) is classes["Node"]
    params_file, overrides = node.kwargs["parameters"]
    assert params_file.endswith("config/cityscapes_seg.yaml")
    assert overrides == {name: configuration(name) for name in given}  # read by launch_ros as YAML, like -p
    assert node.kwargs["executable"] == "cityscapes_seg_node" and node.kwargs["arguments"] == []
    assert node.kwargs["ros_arguments"] == ["--log-level", "info"]


def test_every_node_parameter_can_be_given(launch):
    module, _ = launch
    assert set(module.node_parameters(dict.fromkeys(SPECS))) == set(SPECS)
    assert not set(module.ARGUMENTS) & set(SPECS)  # no launch argument hides a node parameter


def test_lifecycle_true_starts_the_managed_node(launch):
    _, classes = launch
    (node,) = run(launch, lifecycle="true", namespace="/vehicle", log_level="debug")
    assert type(node) is classes["LifecycleNode"]
    assert node.kwargs["arguments"] == [LIFECYCLE_FLAG] and node.kwargs["namespace"] == "/vehicle"
    assert node.kwargs["ros_arguments"] == ["--log-level", "debug"]


def test_rviz_true_starts_rviz2_first_with_the_config(launch):
    _, classes = launch
    rviz, node = run(launch, rviz="true")
    assert type(rviz) is classes["Node"] and rviz.kwargs["package"] == "rviz2"
    assert rviz.kwargs["arguments"][1].endswith("config/cityscapes_seg.rviz")
    assert node.kwargs["package"] == "cityscapes_seg_ros"
