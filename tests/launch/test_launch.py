"""launch/segmentation.launch.py's argument handling, loaded without `launch` / `launch_ros` (not on PyPI):
what a user types after `ros2 launch cityscapes_seg_ros segmentation.launch.py` and what the node then gets."""

import importlib.util
import sys
from pathlib import Path

import pytest

from cityscapes_seg_ros.node.params import SPECS, problem

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "segmentation.launch.py"


@pytest.fixture(scope="module")
def launch_file():
    """The launch file as a module, with the launch packages made unimportable while it loads."""
    blocked = ("launch", "launch_ros", "launch.actions", "launch.substitutions", "launch_ros.actions")
    saved = {name: sys.modules.get(name) for name in blocked}
    sys.modules.update(dict.fromkeys(blocked))  # None in sys.modules: ImportError on import
    try:
        spec = importlib.util.spec_from_file_location("segmentation_launch", LAUNCH_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module


@pytest.mark.parametrize(
    "text, topics",
    [
        ("['/a/image_raw']", ["/a/image_raw"]),
        ("[/a/image_raw, /b/image_raw]", ["/a/image_raw", "/b/image_raw"]),
        ('["/a/image_raw", "/b/image_raw"]', ["/a/image_raw", "/b/image_raw"]),
        ("/cam/front/image_raw", ["/cam/front/image_raw"]),
        ("  [ /a/image_raw ]  ", ["/a/image_raw"]),
        ("['on']", ["on"]),  # a string, not YAML's true
        ("", None),
        ("   ", None),
    ],
)
def test_image_topics_as_a_list_or_one_topic(launch_file, text, topics):
    assert launch_file.parse_image_topics(text) == topics


@pytest.mark.parametrize(
    "text, words",
    [
        ("[/a/image_raw", "cannot read '[/a/image_raw'"),
        ("[]", "non-empty list of topics"),
        ("{a: b}", "non-empty list of topics"),
        ("42", "non-empty list of topics"),
        ("[1, 2]", "1 in '[1, 2]' is not a topic name"),
        ("[/a/image_raw, [/b]]", "is not a topic name"),
        ("/a/image_raw,/b/image_raw", "give several topics as a list"),
        ("/a/image_raw /b/image_raw", "give several topics as a list"),
    ],
)
def test_image_topics_that_are_no_list_of_topics_are_named(launch_file, text, words):
    with pytest.raises(launch_file.LaunchArgumentError) as raised:
        launch_file.parse_image_topics(text)
    message = str(raised.value)
    assert message.startswith("image_topics: ") and words in message and "\n" not in message


def test_only_given_arguments_override_the_params_file(launch_file):
    untouched = {"image_topics": "", "model": "", "checkpoint": "", "device": "", "use_sim_time": ""}
    assert launch_file.parameter_overrides({**untouched, "input_transport": "  "}) == {}
    overrides = launch_file.parameter_overrides(
        {
            **untouched,
            "image_topics": "['/cam/front/image_raw']",
            "checkpoint": "none",
            "device": "cpu",
            "use_sim_time": "True",
        }
    )
    assert overrides == {
        "image_topics": ["/cam/front/image_raw"],
        "checkpoint": "none",
        "device": "cpu",
        "use_sim_time": True,
    }


def test_every_override_is_a_node_parameter_the_node_accepts(launch_file):
    overrides = launch_file.parameter_overrides(
        {
            "image_topics": "[/cam/front/image_raw, /cam/rear/image_raw]",
            "input_transport": "compressed",
            "model": "upernet_internimage_t_512x1024_160k_cityscapes",
            "checkpoint": "none",
            "device": "cpu",
        }
    )
    assert set(overrides) == {"image_topics", *launch_file.STRING_OVERRIDES}
    assert set(launch_file.STRING_OVERRIDES) <= set(SPECS)
    for name, value in overrides.items():
        assert problem(name, value) is None, name


@pytest.mark.parametrize("text, value", [("true", True), ("False", False), ("1", True), ("off", False), ("", None)])
def test_true_false_arguments(launch_file, text, value):
    assert launch_file.parse_bool("use_sim_time", text) is value


def test_a_word_that_is_no_boolean_is_named(launch_file):
    with pytest.raises(launch_file.LaunchArgumentError, match=r"^use_sim_time: expected true or false, got 'maybe'$"):
        launch_file.parameter_overrides({"use_sim_time": "maybe"})


def test_log_level_becomes_the_nodes_ros_argument(launch_file):
    assert launch_file.node_ros_arguments({"log_level": "DEBUG"}) == ["--ros-args", "--log-level", "debug"]
    assert launch_file.node_ros_arguments({"log_level": ""}) == []
    with pytest.raises(launch_file.LaunchArgumentError, match="log_level: expected one of debug, info, warn"):
        launch_file.node_ros_arguments({"log_level": "verbose"})


def test_namespace(launch_file):
    assert launch_file.node_namespace("") is None
    assert launch_file.node_namespace("vehicle") == "/vehicle"
    assert launch_file.node_namespace("/fleet/car1 ") == "/fleet/car1"


def _ament_prefix(root: Path, packages):
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    for package in packages:
        (index / package).write_text("")
    return root


def test_rviz_without_rviz2_installed_is_refused_with_a_reason(launch_file, tmp_path, monkeypatch):
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(_ament_prefix(tmp_path / "install", ["cityscapes_seg_ros"])))
    message = launch_file.rviz_problem("true")
    assert "rviz2 is not installed" in message and "nothing was started" in message
    assert launch_file.rviz_problem("false") is None


def test_rviz_with_rviz2_installed_is_fine(launch_file, tmp_path, monkeypatch):
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(_ament_prefix(tmp_path / "install", ["rviz2"])))
    assert launch_file.rviz_problem("true") is None


def test_every_documented_argument_is_declared(launch_file):
    declared = {name for name, _, _ in launch_file.ARGUMENTS} | {"params_file", "rviz_config"}
    assert {
        "image_topics",
        "namespace",
        "use_sim_time",
        "log_level",
        "model",
        "checkpoint",
        "device",
        "params_file",
        "input_transport",
        "rviz",
        "rviz_config",
    } == declared
    docstring = launch_file.__doc__
    assert all(name in docstring for name in declared)
