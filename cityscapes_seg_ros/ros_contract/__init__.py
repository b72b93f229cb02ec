"""The ROS interface of the package, in one place and importable without rclpy or torch.

``topics``: the topic names the node reads and writes and their message types; ``image_codec``: the one
``sensor_msgs/Image`` / ``CompressedImage`` <-> numpy codec. The node, the bag tools and the tests all use
these, so a name or an encoding cannot differ between them.
"""
