"""Live evaluation: the node (started here, or already running) fed by a replay of the bag.

For a camera topic ``<ns>/<name>`` the node publishes ``<ns>/segmentation/labels`` (mono8 train ids,
the input's header). Each output is matched to its input by header stamp; latency is the output's
receive time minus the input's publish time (one monotonic clock, both in this process).

The replay runs at the bag's timing scaled by ``--rate`` (a busy node drops frames, as on a vehicle: the figures
for latency and drops), or in lock step (``--lockstep``): each camera frame goes out once the previous one's labels
came back, so the node never holds two frames and none is dropped by construction (the figures for scores).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..harness.interrupts import interrupts_deferred, terminate_as_interrupt
from ..harness.node_process import NodeProcess, ros_node_command
from ..harness.ros import publisher_is_reliable, reliable_qos, ros_node, wait_until
from ..ros_contract.image_codec import decode_image
from ..ros_contract.topics import IMAGE_TYPE, camera_info_topic, camera_of_input, output_topic, segmentation_namespace
from .bagio import BagError, BagSummary, UniqueStamps, header_stamp_ns, typestore
from .collected import Collected, FrameTiming
from .evaluate_options import EvaluateOptions
from .predictions import PredictionStore
from .recorder import OutputRecorder
from .replay import BagPlayer, ReplayOptions

log = logging.getLogger(__name__)

DEFAULT_NODE_MODULE = "cityscapes_seg_ros.node"


def node_command(options: EvaluateOptions, base_topic: str, transport: str) -> List[str]:
    parameters = [f"image_topics:=['{base_topic}']", f"input_transport:={transport}"]
    parameters += options.model.node_parameters(options.model_given)
    parameters += options.node_args
    return ros_node_command(options.node_module or DEFAULT_NODE_MODULE, options.params_file, parameters)


class OutputCollector:
    """Receives the node's label images (raw CDR), timing them on arrival and decoding them aside."""

    def __init__(
        self, node, topic: str, reliable: bool, store: PredictionStore, timings: Dict[int, FrameTiming]
    ) -> None:
        self.store, self.timings = store, timings
        self.lock = threading.Lock()
        self.unmatched = 0
        self.last_stamp: Optional[int] = None  # the camera frame published last
        self.last_output = time.monotonic()
        self.pending: queue.Queue[Optional[Tuple[int, bytes]]] = queue.Queue()
        self.decode_errors: List[str] = []
        self.worker = threading.Thread(target=self.decode_loop, daemon=True)
        self.worker.start()
        from sensor_msgs.msg import Image

        self.subscription = node.create_subscription(
            Image, topic, self.on_output, reliable_qos(100, reliable), raw=True
        )

    def on_publish(self, topic: str, data: bytes, published_ns: int, image_topic: str, stamps: UniqueStamps) -> None:
        """Before each camera frame goes out: a repeated stamp stops the replay (BagError), others are timed."""
        if topic == image_topic:
            stamp = header_stamp_ns(data)
            stamps.add(stamp)
            with self.lock:
                self.timings[stamp] = FrameTiming(published_ns)
                self.last_stamp = stamp

    def on_output(self, data: bytes) -> None:
        received = time.monotonic_ns()
        stamp = header_stamp_ns(data)
        with self.lock:
            self.last_output = time.monotonic()
            timing = self.timings.get(stamp)
            if timing is None:
                self.unmatched += 1
                return
            if timing.received_ns is None:
                timing.received_ns = received
        self.pending.put((stamp, data))

    def decode_loop(self) -> None:
        store = typestore()
        while (item := self.pending.get()) is not None:
            stamp, data = item
            try:
                self.store.put(stamp, decode_image(store.deserialize_cdr(data, IMAGE_TYPE)))
            except (BagError, ValueError) as exc:
                self.decode_errors.append(f"output of frame {stamp}: unreadable ({exc})")

    def answered(self, stamp: int) -> bool:
        with self.lock:
            return self.timings[stamp].received_ns is not None

    def outstanding(self) -> int:
        with self.lock:
            return sum(1 for t in self.timings.values() if t.received_ns is None)

    def finish(self) -> None:
        self.pending.put(None)
        self.worker.join()


def wait_for_node(
    node, player: BagPlayer, image_topic: str, labels_topic: str, process: Optional[NodeProcess], timeout_sec: float
) -> None:
    """Until the node subscribes to the camera topic and publishes labels (or died / timed out)."""
    publisher = player.publishers[image_topic]

    def ready() -> bool:
        if process is not None:
            process.check_alive()
        return publisher.get_subscription_count() > 0 and node.count_publishers(labels_topic) > 0

    if not wait_until(ready, timeout_sec, poll_sec=0.2):
        hint = f"; its log {process.log_path} ends with:\n{process.log_tail()}" if process else ""
        raise BagError(
            f"the node was not ready within {timeout_sec:.0f} s (no subscriber on "
            f"{publisher.topic_name} or no publisher of {labels_topic}){hint}"
        )


def node_exited(process: Optional[NodeProcess]) -> bool:
    """The node started here has exited (never, for a node already running)."""
    return process is not None and process.process.poll() is not None


def drain(collector: OutputCollector, timeout_sec: float, process: Optional[NodeProcess]) -> None:
    """Wait for outstanding outputs until none is left or none came for ``timeout_sec``."""
    collector.last_output = max(collector.last_output, time.monotonic())
    while collector.outstanding():
        if node_exited(process):
            return
        if time.monotonic() - collector.last_output > timeout_sec:
            return
        time.sleep(0.05)


def collect_live(bag: Path, image_topic: str, summary: BagSummary, options: EvaluateOptions, out: Path) -> Collected:
    """Replay the bag's camera (and camera_info) into the node and collect its label images.

    The node started here is stopped on every way out (an error, Ctrl-C, SIGTERM); its log is ``out/node.log``.
    """
    base_topic, transport = camera_of_input(image_topic, summary.topics[image_topic].msgtype)
    labels_topic = output_topic(base_topic, "labels")
    info_topic = camera_info_topic(base_topic)
    topics = [image_topic] + ([info_topic] if info_topic in summary.topics else [])
    collected = Collected([], PredictionStore(options.save_predictions))
    stamps = UniqueStamps(bag, image_topic)
    process = None
    with terminate_as_interrupt(), ros_node("cityscapes_seg_bag_evaluator", spin=True) as (node, _):
        collector: Optional[OutputCollector] = None

        def on_publish(topic: str, data: bytes, published_ns: int) -> None:
            if collector is not None:
                collector.on_publish(topic, data, published_ns, image_topic, stamps)

        def lockstep_gate(topic: str) -> None:
            """Until the last frame's labels came (a frame the node lost: ``--drain-timeout`` s, then it counts as
            dropped), so that the node never holds two frames."""
            stamp = collector.last_stamp if collector is not None else None
            if topic == image_topic and stamp is not None:
                wait_until(lambda: collector.answered(stamp) or node_exited(process), options.drain_timeout, 0.01)

        replay = ReplayOptions(rate=options.rate, topics=topics, queue_depth=100)
        player = BagPlayer(node, bag, replay, on_publish, gate=lockstep_gate if options.lockstep else None)
        recorder = None
        try:
            if not options.use_running_node:
                with interrupts_deferred():  # bound to ``process`` before a Ctrl-C can land: then it is stopped
                    process = NodeProcess(node_command(options, base_topic, transport), Path(out) / "node.log")
            wait_for_node(node, player, image_topic, labels_topic, process, options.ready_timeout)
            collector = OutputCollector(
                node, labels_topic, publisher_is_reliable(node, labels_topic), collected.store, collected.timings
            )
            if options.record:
                recorder = OutputRecorder(node, segmentation_namespace(base_topic) + "/", options.record)
            # The node's labels publisher must have matched our new subscription before the first frame.
            wait_until(lambda: collector.subscription.get_publisher_count() > 0, 10.0)
            pace = "in lock step" if options.lockstep else f"at rate {options.rate:.2f}"
            log.info("replaying %s into the node %s", image_topic, pace)
            started = time.monotonic()
            stats = player.play()
            drain(collector, options.drain_timeout, process)
            collected.wall_sec = time.monotonic() - started
            if stats.problem:
                collected.problems.append(stats.problem)
            rate = None if options.lockstep else options.rate
            collected.details["replay"] = {"rate": rate, "lockstep": options.lockstep, "published": stats.published}
        finally:
            try:
                if collector is not None:
                    collector.finish()
                    collected.unmatched_outputs = collector.unmatched
                    collected.problems += collector.decode_errors
                if recorder is not None:
                    recorder.close()
            finally:
                if process is not None:
                    process.stop()
    collected.image_stamps = sorted(collected.timings)
    collected.details["node"] = {
        "command": process.command if process else None,
        "log": str(process.log_path) if process else None,
        "labels_topic": labels_topic,
        "recorded_bag": str(options.record) if options.record else None,
    }
    return collected
