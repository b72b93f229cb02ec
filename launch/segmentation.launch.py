"""Launch cityscapes_seg_node (and optionally rviz2) on a ROS 2 install.

    ros2 launch cityscapes_seg_ros segmentation.launch.py image_topics:="[/cam/front/image_raw]"
    ros2 launch cityscapes_seg_ros segmentation.launch.py \
        image_topics:="['/cam/front/image_raw', '/cam/rear/image_raw']" device:=cuda rviz:=true

Arguments (`ros2 launch cityscapes_seg_ros segmentation.launch.py --show-args` lists them):
params_file (default: the package's config/cityscapes_seg.yaml); image_topics (a YAML list, or one topic),
input_transport, model, checkpoint, device, use_sim_time: each overrides the params file only when given;
namespace (the node's namespace), log_level (debug/info/warn/error/fatal), rviz (true/false: also start rviz2,
which must be installed; it is not a dependency of this package), rviz_config (default:
config/cityscapes_seg.rviz, which shows /camera/image_raw and its segmentation).

The argument handling is plain Python below the launch glue, so it can be tested without `launch` installed.
"""

import os
from typing import TYPE_CHECKING, Dict, List, Optional, Union

import yaml

if TYPE_CHECKING:  # launch is needed only to launch; the functions above the glue work without it
    from launch import LaunchDescription

PACKAGE = "cityscapes_seg_ros"
NODE_EXECUTABLE = "cityscapes_seg_node"
RVIZ_PACKAGE = "rviz2"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
# Launch arguments that override the params file's string parameter of the same name when given.
STRING_OVERRIDES = ("input_transport", "model", "checkpoint", "device")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")

Override = Union[str, bool, List[str]]


class LaunchArgumentError(ValueError):
    """A launch argument a user gave that cannot be used; the message says which and why."""


def parse_image_topics(text: str) -> Optional[List[str]]:
    """``image_topics`` as given on the command line: ``"['/a/image_raw', '/b/image_raw']"``,
    ``"[/a/image_raw, /b/image_raw]"`` or one topic ``/a/image_raw``; empty: not given (None)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise LaunchArgumentError(
            f"image_topics: cannot read {text!r} ({problem}); give a list, e.g. image_topics:=\"['/cam/image_raw']\""
        ) from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise LaunchArgumentError(
            f"image_topics: expected a topic or a non-empty list of topics, got {text!r}; "
            "e.g. image_topics:=\"['/cam/front/image_raw', '/cam/rear/image_raw']\""
        )
    topics = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise LaunchArgumentError(f"image_topics: {item!r} in {text!r} is not a topic name")
        topic = item.strip()
        if "," in topic or any(character.isspace() for character in topic):
            raise LaunchArgumentError(
                f"image_topics: {topic!r} is not a topic name; give several topics as a list, "
                "e.g. image_topics:=\"['/cam/front/image_raw', '/cam/rear/image_raw']\""
            )
        topics.append(topic)
    return topics


def parse_bool(name: str, text: str) -> Optional[bool]:
    """A true/false launch argument; empty: not given (None)."""
    word = text.strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise LaunchArgumentError(f"{name}: expected true or false, got {text!r}")


def parse_log_level(text: str) -> Optional[str]:
    """``log_level``: one of debug, info, warn, error, fatal; empty: not given (None)."""
    level = text.strip().lower()
    if not level:
        return None
    if level not in LOG_LEVELS:
        raise LaunchArgumentError(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def parameter_overrides(arguments: Dict[str, str]) -> Dict[str, Override]:
    """The node parameters that the given launch arguments (name -> text, empty = not given) set over the
    params file."""
    overrides: Dict[str, Override] = {}
    topics = parse_image_topics(arguments.get("image_topics", ""))
    if topics is not None:
        overrides["image_topics"] = topics
    for name in STRING_OVERRIDES:
        value = arguments.get(name, "").strip()
        if value:
            overrides[name] = value
    use_sim_time = parse_bool("use_sim_time", arguments.get("use_sim_time", ""))
    if use_sim_time is not None:
        overrides["use_sim_time"] = use_sim_time
    return overrides


def node_ros_arguments(arguments: Dict[str, str]) -> List[str]:
    """Command-line ROS arguments of the node (``--ros-args --log-level <level>`` when log_level is given)."""
    level = parse_log_level(arguments.get("log_level", ""))
    return ["--ros-args", "--log-level", level] if level else []


def node_namespace(text: str) -> Optional[str]:
    """The node's namespace (``/vehicle`` or ``vehicle``); empty: the root namespace (None)."""
    namespace = text.strip()
    if not namespace:
        return None
    return namespace if namespace.startswith("/") else f"/{namespace}"


def rviz_problem(rviz_text: str) -> Optional[str]:
    """Why ``rviz:=<rviz_text>`` cannot be honoured (rviz2 is not installed), or None."""
    if not parse_bool("rviz", rviz_text):
        return None
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix(RVIZ_PACKAGE)
    except PackageNotFoundError:
        return (
            "rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); nothing was started. "
            "Run without rviz:=true, or view the topics on another machine with config/cityscapes_seg.rviz"
        )
    return None


# ---- launch glue (needs launch / launch_ros) -------------------------------------------------------------

ARGUMENTS = (
    ("image_topics", "", "camera image topics, a YAML list: \"['/cam/front/image_raw', '/cam/rear/image_raw']\""),
    ("input_transport", "", "raw or compressed; empty: the params file's"),
    ("model", "", "model name or mmseg config file; empty: the params file's"),
    ("checkpoint", "", "hub, hf://owner/repo/file, a .pth path, or none; empty: the params file's"),
    ("device", "", "auto, cpu, cuda or cuda:<index>; empty: the params file's"),
    ("use_sim_time", "", "true: follow /clock; empty: the params file's (else false)"),
    ("namespace", "", "namespace of the node (its topics given as absolute names stay as they are)"),
    ("log_level", "", "debug, info, warn, error or fatal; empty: info"),
    ("rviz", "false", "true: also start rviz2 (must be installed) with rviz_config"),
)


def _launch_setup(context, *args, **kwargs):
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    arguments = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    problem = rviz_problem(arguments["rviz"])
    if problem:
        raise RuntimeError(problem)
    overrides = parameter_overrides(arguments)
    # Typed, so launch_ros does not read strings as YAML (a topic "on" or model "1" stays a string).
    typed = {
        name: value if isinstance(value, bool) else ParameterValue(value, value_type=type(value))
        for name, value in overrides.items()
        if not isinstance(value, list)
    }
    if "image_topics" in overrides:
        typed["image_topics"] = ParameterValue(overrides["image_topics"], value_type=List[str])
    actions = [
        Node(
            package=PACKAGE,
            executable=NODE_EXECUTABLE,
            name=NODE_EXECUTABLE,
            namespace=node_namespace(arguments["namespace"]),
            output="screen",
            emulate_tty=True,
            parameters=[LaunchConfiguration("params_file"), typed],
            arguments=node_ros_arguments(arguments),
        )
    ]
    if parse_bool("rviz", arguments["rviz"]):
        actions.append(
            Node(
                package=RVIZ_PACKAGE,
                executable="rviz2",
                name="rviz2",
                arguments=["-d", LaunchConfiguration("rviz_config")],
                output="screen",
            )
        )
    return actions


def generate_launch_description() -> "LaunchDescription":
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchDescription

    share = get_package_share_directory(PACKAGE)
    declared = [
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "cityscapes_seg.yaml"),
            description="ROS 2 parameter file of cityscapes_seg_node",
        ),
        *(DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS),
        DeclareLaunchArgument(
            "rviz_config",
            default_value=os.path.join(share, "config", "cityscapes_seg.rviz"),
            description="rviz2 configuration",
        ),
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_setup)])
