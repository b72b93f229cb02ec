"""Entry point: ``python -m cityscapes_seg_ros.node [--lifecycle] --ros-args --params-file config/cityscapes_seg.yaml``.

``--lifecycle`` runs the managed variant (``lifecycle.py``): it starts unconfigured and waits for its
transitions (``ros2 lifecycle set``, a lifecycle manager). Exit status: 0 after a normal stop (SIGINT / SIGTERM /
shutdown), 2 when start-up fails (a bad parameter or argument, a missing or wrong checkpoint, an unavailable
device), with one error line naming the problem.
"""

from __future__ import annotations

import signal
import sys
from typing import List, Optional

LIFECYCLE_FLAG = "--lifecycle"


def main(argv: Optional[List[str]] = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.logging import get_logger
    from rclpy.utilities import remove_ros_args

    from ..harness.interrupts import stacks_on_sigusr1
    from ..segmenter import CheckpointError
    from .node import NODE_NAME, SegmentationNode
    from .params import ParameterError

    stacks_on_sigusr1()
    args = sys.argv if argv is None else argv
    rclpy.init(args=args)
    node = None
    try:
        own_args = remove_ros_args(args)[1:]
        unknown = [arg for arg in own_args if arg != LIFECYCLE_FLAG]
        if unknown:
            raise ValueError(f"unknown argument(s) {' '.join(unknown)} (the node takes {LIFECYCLE_FLAG} and ROS args)")
        if LIFECYCLE_FLAG in own_args:
            from .lifecycle import SegmentationLifecycleNode

            node = SegmentationLifecycleNode()
        else:
            node = SegmentationNode()
        rclpy.spin(node)
    except (ParameterError, CheckpointError, ValueError, RuntimeError, OSError) as exc:
        if node is None:  # start-up failed: one clear line, no stack dump
            get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
            return 2
        raise
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # A terminal's Ctrl-C reaches the whole process group, and ros2 launch then sends its own SIGINT:
        # the second one must not interrupt the teardown (it would leave a traceback and exit -2).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
