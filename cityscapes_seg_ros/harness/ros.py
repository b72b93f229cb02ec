"""The rclpy side of driving a node: a private context, QoS, waiting, header stamps; failures as HarnessError."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Tuple


class HarnessError(RuntimeError):
    """The node process or the rclpy side around it failed, with the reason in words."""


def stamp_to_ns(stamp) -> int:
    """A builtin_interfaces/Time (rosbags or rclpy object) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def require_rclpy() -> None:
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        raise HarnessError(
            f"rclpy is not importable ({exc}); install the ROS 2 wheels: "
            "pip install ros-rclpy ros-rmw-fastrtps-cpp ros-sensor-msgs ros-std-msgs ros-rosgraph-msgs"
        ) from None


@contextmanager
def ros_node(name: str, spin: bool = False) -> Iterator[Tuple[object, object]]:
    """(node, executor) in a context of their own, shut down on leaving; no signal handlers installed.

    ``spin``: callbacks run in a background thread, stopped and joined before the node goes (a thread still
    inside rclpy when the interpreter exits aborts it).
    """
    require_rclpy()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.Context()
    rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = spinner = None
    stop = threading.Event()
    try:
        node = Node(name, context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        if spin:
            spinner = threading.Thread(target=spin_until, args=(executor, stop), name=f"{name}-spin", daemon=True)
            spinner.start()
        yield node, executor
    finally:
        stop.set()
        if spinner is not None:
            spinner.join()
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        context.try_shutdown()


def spin_until(executor, stop: threading.Event, period_sec: float = 0.05) -> None:
    """Run callbacks until ``stop`` is set, looking at it every ``period_sec``."""
    while not stop.is_set() and executor.context.ok():
        executor.spin_once(timeout_sec=period_sec)


def reliable_qos(depth: int = 10, reliable: bool = True):
    """Reliable by default: best-effort loses images above about 512 KB between processes."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


def publisher_is_reliable(node, topic: str) -> bool:
    """Subscribe as the node publishes: a reliable subscriber would not match a best-effort publisher."""
    from rclpy.qos import ReliabilityPolicy

    infos = node.get_publishers_info_by_topic(topic)
    return not infos or all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)


def wait_until(condition: Callable[[], bool], timeout_sec: float, poll_sec: float = 0.05) -> bool:
    """Poll ``condition`` until true or the timeout passes; True when it came true."""
    deadline = time.monotonic() + timeout_sec
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_sec)
