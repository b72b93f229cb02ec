"""Launch cityscapes_seg_node (and optionally rviz2) on a ROS 2 install.

    ros2 launch cityscapes_seg_ros segmentation.launch.py
    ros2 launch cityscapes_seg_ros segmentation.launch.py image_topics:="[/cam/front/image_raw, /cam/rear/image_raw]" \
        params_file:=/path/to/params.yaml rviz:=true

Arguments: params_file (default: the package's config/cityscapes_seg.yaml), image_topics (overrides the
file's list when given), input_transport (raw/compressed, overrides when given), rviz (true/false),
rviz_config (default: config/cityscapes_seg.rviz, which shows /camera/image_raw and its segmentation).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def _segmentation_node(context, *args, **kwargs):
    overrides = {}
    topics = LaunchConfiguration("image_topics").perform(context).strip()
    if topics:
        overrides["image_topics"] = [t.strip() for t in topics.strip("[]").split(",") if t.strip()]
    transport = LaunchConfiguration("input_transport").perform(context).strip()
    if transport:
        overrides["input_transport"] = transport
    return [
        Node(
            package="cityscapes_seg_ros",
            executable="cityscapes_seg_node",
            name="cityscapes_seg_node",
            output="screen",
            emulate_tty=True,
            parameters=[LaunchConfiguration("params_file"), overrides],
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("cityscapes_seg_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "cityscapes_seg.yaml"),
                description="ROS 2 parameter file of cityscapes_seg_node",
            ),
            DeclareLaunchArgument(
                "image_topics",
                default_value="",
                description="camera image topics, e.g. [/cam/front/image_raw, /cam/rear/image_raw]",
            ),
            DeclareLaunchArgument("input_transport", default_value="", description="raw or compressed"),
            DeclareLaunchArgument("rviz", default_value="false", description="start rviz2 with the package's view"),
            DeclareLaunchArgument(
                "rviz_config",
                default_value=os.path.join(share, "config", "cityscapes_seg.rviz"),
                description="rviz2 configuration",
            ),
            OpaqueFunction(function=_segmentation_node),
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", LaunchConfiguration("rviz_config")],
                condition=IfCondition(LaunchConfiguration("rviz")),
            ),
        ]
    )
