"""Entry point: ``python -m cityscapes_seg_ros.node --ros-args --params-file config/cityscapes_seg.yaml``.

Exit status: 0 after a normal stop (SIGINT / SIGTERM / shutdown), 2 when start-up fails (a bad parameter,
a missing or wrong checkpoint, an unavailable device), with one error line naming the problem.
"""

from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.logging import get_logger

    from ..checkpoint import CheckpointError
    from .node import NODE_NAME, SegmentationNode
    from .params import ParameterError

    rclpy.init(args=sys.argv if argv is None else argv)
    node = None
    try:
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
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
