"""Launch cityscapes_seg_node (as a lifecycle node with lifecycle:=true), optionally with rviz2.

    ros2 launch cityscapes_seg_ros segmentation.launch.py image_topics:="['/cam/front/image_raw']" device:=cuda

Launch arguments: params_file (default: the package's config/cityscapes_seg.yaml), namespace, log_level, lifecycle
(true: the managed node, which waits for its transitions), rviz (true: also rviz2, no dependency of this package)
and rviz_config. Every node parameter given as NAME:=VALUE (image_topics, model, checkpoint, device, use_sim_time,
...) overrides the params file, read as YAML as `-p NAME:=VALUE` is; the node checks it (docs/node.md).
"""

import os

PACKAGE, EXECUTABLE = "cityscapes_seg_ros", "cityscapes_seg_node"
# The launch file's own arguments and their defaults (paths: in the package's share folder).
ARGUMENTS = dict(
    params_file="config/cityscapes_seg.yaml",
    namespace="",
    log_level="info",
    lifecycle="false",
    rviz="false",
    rviz_config="config/cityscapes_seg.rviz",
)


def node_parameters(given: dict) -> list:
    """The launch configurations that name a node parameter: handed to the node over its params file."""
    from cityscapes_seg_ros.node.params import SPECS

    return [name for name in given if name in SPECS or name == "use_sim_time"]


def _launch_setup(context):
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode, Node

    given = context.launch_configurations
    lifecycle, rviz = (given[name].lower() in ("true", "1") for name in ("lifecycle", "rviz"))
    overrides = {name: LaunchConfiguration(name) for name in node_parameters(given)}
    node = (LifecycleNode if lifecycle else Node)(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=EXECUTABLE,
        namespace=given["namespace"],
        parameters=[given["params_file"], overrides],
        arguments=["--lifecycle"] if lifecycle else [],
        ros_arguments=["--log-level", given["log_level"]],
        output="screen",
    )
    # rviz2 first: where it is not installed, the launch stops before the node starts.
    return [Node(package="rviz2", executable="rviz2", arguments=["-d", given["rviz_config"]])] * rviz + [node]


def generate_launch_description():
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchDescription

    share = get_package_share_directory(PACKAGE)
    defaults = {name: os.path.join(share, value) if "/" in value else value for name, value in ARGUMENTS.items()}
    declared = [DeclareLaunchArgument(name, default_value=value) for name, value in defaults.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_setup)])
