"""``cityscapes-seg-bag replay``: publish a bag into the ROS graph with rclpy, like ``ros2 bag play``.

Messages are published as the CDR bytes stored in the bag (rclpy's raw publishing: no
deserialization), at the bag's timing scaled by ``rate``, optionally with /clock from bag time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..harness.ros import reliable_qos, ros_node, wait_until
from .bagio import BagError, ReadProblem, message_class, read_messages, summarize

log = logging.getLogger(__name__)

# Called just before each publish: (topic in the bag, CDR bytes, time.monotonic_ns()).
PublishHook = Callable[[str, bytes, int], None]
# Paces the replay instead of the bag's timing: called with each message's topic, returns when it may go out.
Gate = Callable[[str], None]


def parse_remaps(texts: List[str]) -> Dict[str, str]:
    remaps = {}
    for text in texts:
        source, sep, target = text.partition(":=")
        if not sep or not source or not target:
            raise BagError(f"--remap expects FROM:=TO, got {text!r}")
        if source in remaps:
            raise BagError(f"--remap names {source} twice")
        remaps[source] = target
    return remaps


def check_number(name: str, value: Optional[float], minimum: float, inclusive: bool = False) -> None:
    """A BagError unless ``value`` (when given) is a finite number above ``minimum`` (or equal, when inclusive)."""
    if value is None:
        return
    if not (math.isfinite(value) and (value >= minimum if inclusive else value > minimum)):
        bound = f"at least {minimum:g}" if inclusive else ("positive" if minimum == 0 else f"above {minimum:g}")
        raise BagError(f"{name} must be a finite number, {bound}; got {value}")


@dataclass
class ReplayOptions:
    rate: float = 1.0
    loop: bool = False
    start_sec: float = 0.0
    topics: Optional[List[str]] = None  # None: every topic in the bag
    remaps: Dict[str, str] = field(default_factory=dict)
    clock_hz: Optional[float] = None  # publish /clock at this rate (and with every message)
    reliable: bool = True
    wait_for_subscribers_sec: float = 0.0
    queue_depth: int = 10

    def check(self) -> None:
        """A BagError for values that cannot be played (checked before any ROS set-up)."""
        check_number("--rate", self.rate, 0)
        check_number("--start", self.start_sec, 0, inclusive=True)
        check_number("--clock", self.clock_hz, 0)
        check_number("--wait-for-subscribers", self.wait_for_subscribers_sec, 0, inclusive=True)


@dataclass
class ReplayStats:
    published: int = 0
    wall_sec: float = 0.0
    loops: int = 0
    problem: Optional[str] = None  # the bag broke off part-way (what came before was published)


class BagPlayer:
    """Publishes one bag through a given rclpy node; ``play`` blocks until done or ``stop`` is set."""

    def __init__(
        self,
        node,
        bag: Path,
        options: ReplayOptions,
        on_publish: Optional[PublishHook] = None,
        gate: Optional[Gate] = None,
    ) -> None:
        options.check()
        self.node, self.bag, self.options, self.on_publish, self.gate = node, Path(bag), options, on_publish, gate
        summary = summarize(self.bag)
        topics = options.topics or list(summary.topics)
        unknown = [t for t in topics + list(options.remaps) if t not in summary.topics]
        if unknown:
            held = ", ".join(summary.topics) or "none"
            raise BagError(f"{self.bag}: no topic {', '.join(map(repr, unknown))} in the bag; it holds: {held}")
        published = [options.remaps.get(t, t) for t in topics]
        clashing = sorted({name for name in published if published.count(name) > 1})
        if clashing:
            raise BagError(f"--remap would publish several bag topics on {', '.join(clashing)}")
        self.topics = topics
        self.start_ns = summary.start_ns + int(options.start_sec * 1e9)
        qos = reliable_qos(options.queue_depth, options.reliable)
        self.publishers = {}
        for topic in topics:
            self.publishers[topic] = self.create_publisher(summary.topics[topic].msgtype, topic, qos)
        self.clock_publisher = None
        if options.clock_hz is not None:
            from rosgraph_msgs.msg import Clock

            self.clock_publisher = node.create_publisher(Clock, "/clock", reliable_qos(1))
        self.stop = threading.Event()

    def create_publisher(self, msgtype: str, topic: str, qos):
        from rclpy.exceptions import NameValidationException

        name = self.options.remaps.get(topic, topic)
        try:
            return self.node.create_publisher(message_class(msgtype), name, qos)
        except NameValidationException as exc:
            why = str(exc).splitlines()[0].rstrip(":")
            raise BagError(f"cannot publish {topic} as {name!r}: {why}") from None

    def wait_for_subscribers(self, timeout_sec: float) -> bool:
        """True once every topic has a subscriber (False, with a warning, at the timeout)."""
        ready = wait_until(lambda: all(p.get_subscription_count() > 0 for p in self.publishers.values()), timeout_sec)
        if not ready:
            lonely = [p.topic_name for p in self.publishers.values() if p.get_subscription_count() == 0]
            log.warning("no subscriber after %.1f s on %s; playing anyway", timeout_sec, ", ".join(lonely))
        return ready

    def publish_clock(self, bag_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, 1_000_000_000)
        self.clock_publisher.publish(msg)

    def sleep_until(self, wall_target: float, wall0: float, bag0: int) -> None:
        """Sleep to ``wall_target`` (monotonic s), publishing /clock on the way when asked."""
        period = 1.0 / self.options.clock_hz if self.clock_publisher else 0.1
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= wall_target:
                return
            if self.clock_publisher:
                self.publish_clock(bag0 + int((now - wall0) * self.options.rate * 1e9))
            self.stop.wait(min(period, wall_target - now))

    def play_once(self, stats: ReplayStats) -> None:
        problem = ReadProblem()
        wall0, bag0 = time.monotonic(), None
        for topic, _, bag_ns, data in read_messages(self.bag, self.topics, problem, start_ns=self.start_ns):
            bag0 = bag_ns if bag0 is None else bag0
            if self.gate is None:
                self.sleep_until(wall0 + (bag_ns - bag0) / 1e9 / self.options.rate, wall0, bag0)
            else:
                self.gate(topic)
            if self.stop.is_set():
                return
            if self.clock_publisher:
                self.publish_clock(bag_ns)
            if self.on_publish:
                self.on_publish(topic, data, time.monotonic_ns())
            self.publishers[topic].publish(data)
            stats.published += 1
        if problem.message:
            stats.problem = problem.message
            self.stop.set()  # a broken bag is not looped over

    def play(self) -> ReplayStats:
        if self.options.wait_for_subscribers_sec > 0:
            self.wait_for_subscribers(self.options.wait_for_subscribers_sec)
        stats, started = ReplayStats(), time.monotonic()
        try:
            while not self.stop.is_set():
                self.play_once(stats)
                stats.loops += 1
                if not self.options.loop:
                    break
        finally:
            from rclpy.duration import Duration

            for publisher in self.publishers.values():  # reliable delivery of the last messages
                if publisher.get_subscription_count():
                    publisher.wait_for_all_acked(Duration(seconds=5))
            stats.wall_sec = time.monotonic() - started
        return stats


def replay_bag(bag: Path, options: ReplayOptions) -> ReplayStats:
    """Play a bag from a node of its own (the ``replay`` command)."""
    options.check()
    with ros_node("cityscapes_seg_bag_player") as (node, _):
        player = BagPlayer(node, bag, options)
        log.info(
            "playing %s: %s%s",
            bag,
            ", ".join(p.topic_name for p in player.publishers.values()),
            " (looping)" if options.loop else "",
        )
        try:
            stats = player.play()
        except KeyboardInterrupt:
            player.stop.set()
            raise
    if stats.problem:
        log.error(stats.problem)
    return stats
