"""The ROS 2 node (``python -m cityscapes_seg_ros.node`` / ``cityscapes_seg_node``).

``statistics``, ``pipeline`` and ``params``' checks import without ROS; ``node``
and ``__main__`` need rclpy and the package's messages (``scripts/build_msgs.sh`` or colcon).
"""
