"""cityscapes_seg_node: semantic segmentation of one or more camera streams.

Per camera (image topic ``<ns>/image_raw``) it publishes under ``<ns>/segmentation/``: ``labels`` (mono8
train ids, 255 = ignore), ``color`` (rgb8, official palette), ``overlay`` (rgb8), ``confidence`` (mono8 or
32FC1), ``statistics`` (cityscapes_seg_ros/ClassStatistics) and ``camera_info`` (the camera's
``<ns>/camera_info``), each with the input's header; ``label_info`` (vision_msgs/LabelInfo, transient local,
once, when vision_msgs is installed); ``/diagnostics`` at ``diagnostics_rate``.

Threads: the executor thread only stores the newest message of each camera in a slot of one (a frame
still waiting when a newer one arrives is dropped and counted); one worker thread converts, segments
and publishes, taking the cameras in turn: at most ``max_batch_size`` waiting frames at once (one per camera,
its newest), those of one size segmented by one network forward (``pipeline.batch_groups``).

``SegmentationCore`` is what the plain node and the lifecycle variant (``lifecycle.py``) share: loading the
model, the cameras' publishers and subscriptions, the worker, publishing and diagnostics, as steps that
``SegmentationNode`` runs at construction and the lifecycle node runs on its transitions.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble (rclpy 3.3): the module was renamed in Iron
    from rclpy.qos_event import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..msg import ClassStatistics
from ..ros_contract.image_codec import (
    COMPRESSIBLE_ENCODINGS,
    BadImageError,
    check_header,
    image_msg_to_bgr,
    to_compressed_msg,
    to_image_msg,
)
from ..ros_contract.topics import (
    COLOR_ENCODING,
    IMAGE_OUTPUTS,
    LABELS_ENCODING,
    camera_info_topic,
    compressed_topic,
    input_topic,
    label_info_topic,
    output_topic,
    segmentation_namespace,
)
from ..segmenter import build_predictor
from .label_info import LABEL_INFO_QOS, LabelInfo, label_info_message
from .params import SPECS, NodeSettings, ParameterError, declare_parameters, problem
from .pipeline import DevicePredictor, FrameProcessor, FrameResult, batch_groups
from .statistics import (
    BatchSizeWindow,
    CameraCounters,
    LatencyWindow,
    RecentEvents,
    SequenceGaps,
    camera_health,
)
from .statistics_message import statistics_message

NODE_NAME = "cityscapes_seg_node"
# rclpy hands a two-argument callback the message's MessageInfo (publication sequence numbers); Humble's does not.
CALLBACKS_TAKE_MESSAGE_INFO = getattr(Subscription, "CallbackType", None) is not None
JPEG_OUTPUTS = ("color", "overlay")  # photographs: JPEG; labels and confidence values: PNG, lossless
RECENT_KINDS = ("received", "dropped", "lost", "bad_input", "failed")
DIAGNOSTIC_LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN, "STALE": DiagnosticStatus.STALE}


def load_predictor(settings: NodeSettings) -> DevicePredictor:
    """Build the model the parameters name (raises CheckpointError / ValueError / RuntimeError clearly)."""
    return build_predictor(settings.model_options(), predictor_class=DevicePredictor)


def dcnv3_backend_name(device_type: str, requested: str) -> str:
    if requested == "torch":
        return "pytorch (requested)"
    from ..dcnv3.compiled import dcnv3_op_error, load_dcnv3_op

    if load_dcnv3_op(device_type) is not None:
        return f"compiled ({device_type})"
    return f"pytorch ({dcnv3_op_error(device_type) or 'compiled op unavailable'})"


class Camera:
    """One input stream: its subscriptions (``subscribe`` / ``unsubscribe``), output publishers, newest-frame slot
    and counters."""

    def __init__(self, node: SegmentationCore, image_topic: str) -> None:
        settings = node.settings
        self.image_topic = node.resolve_topic_name(image_topic)
        self.output_ns = segmentation_namespace(self.image_topic)
        self.counters = CameraCounters()
        self.latency = LatencyWindow()
        self.batch_sizes = BatchSizeWindow()
        self.recent = RecentEvents(settings.health_window_s)
        self.sequence_gaps = SequenceGaps()
        self.last_frame_at: Optional[float] = None  # monotonic; before the first frame, when subscribed
        self.pending: Optional[tuple[Any, float]] = None  # (message, monotonic receive time)
        self.camera_info: Optional[CameraInfo] = None
        self.last_statistics_at = -float("inf")
        self._node = node
        self.input_topic = input_topic(self.image_topic, settings.input_transport)
        self.subscriptions: List[Any] = []
        output_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=2,
            durability=DurabilityPolicy.VOLATILE,
            reliability=ReliabilityPolicy.RELIABLE
            if settings.output_reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        topic = self.image_topic
        self.publishers = {
            kind: node.create_publisher(Image, output_topic(topic, kind), output_qos) for kind in IMAGE_OUTPUTS
        }
        # image_transport's compressed form of each image output, made only while someone subscribes to it.
        self.compressed_publishers = {
            kind: node.create_publisher(CompressedImage, compressed_topic(output_topic(topic, kind)), output_qos)
            for kind in IMAGE_OUTPUTS
        }
        self.publishers["statistics"] = node.create_publisher(
            ClassStatistics, output_topic(topic, "statistics"), output_qos
        )
        self.publishers["camera_info"] = node.create_publisher(
            CameraInfo, output_topic(topic, "camera_info"), output_qos
        )
        self.label_info_publisher = None
        if LabelInfo is not None:
            self.label_info_publisher = node.create_publisher(LabelInfo, label_info_topic(topic), LABEL_INFO_QOS)

    def subscribe(self) -> None:
        """Subscribe the camera's image and camera_info topics (frames start arriving in the slot)."""
        settings = self._node.settings
        input_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=qos_profile_sensor_data.depth,
            durability=DurabilityPolicy.VOLATILE,
            reliability=ReliabilityPolicy.RELIABLE
            if settings.input_reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        events = SubscriptionEventCallbacks(incompatible_qos=self._incompatible_qos)
        message_type = CompressedImage if settings.input_transport == "compressed" else Image
        on_image = self._on_image_with_info if CALLBACKS_TAKE_MESSAGE_INFO else self._on_image
        self.last_frame_at = time.monotonic()
        self.subscriptions = [
            self._node.create_subscription(message_type, self.input_topic, on_image, input_qos, event_callbacks=events),
            self._node.create_subscription(
                CameraInfo, camera_info_topic(self.image_topic), self._on_camera_info, input_qos
            ),
        ]

    def unsubscribe(self) -> None:
        """Stop receiving: destroy the subscriptions and drop a frame still waiting in the slot."""
        for subscription in self.subscriptions:
            self._node.destroy_subscription(subscription)
        self.subscriptions = []
        with self._node.frames_ready:
            self.pending = None

    def destroy(self) -> None:
        self.unsubscribe()
        for publisher in [*self.publishers.values(), *self.compressed_publishers.values(), self.label_info_publisher]:
            if publisher is not None:
                self._node.destroy_publisher(publisher)
        self.publishers, self.compressed_publishers = {}, {}
        self.label_info_publisher = None

    def publish_label_info(self, stamp: Any) -> None:
        if self.label_info_publisher is not None:
            self.label_info_publisher.publish(label_info_message(stamp))

    def _on_image_with_info(self, msg: Any, info: Any) -> None:
        lost = self.sequence_gaps.lost(info)
        if lost:
            self.counters.lost += lost
            self.recent.add("lost", lost)
        self._on_image(msg)

    def _on_image(self, msg: Any) -> None:
        """Executor thread: a frame whose header is bad is counted as bad here (never dropped unseen); of the
        others only the newest is kept, for the worker to take."""
        now = time.monotonic()
        self.last_frame_at = now
        self.recent.add("received", now=now)
        try:
            check_header(msg, self._node.settings.max_pixels)
        except BadImageError as exc:
            self.counters.received += 1
            self.record_bad_input(exc)
            return
        with self._node.frames_ready:
            self.counters.received += 1
            if self.pending is not None:
                self.counters.dropped += 1
                self.recent.add("dropped", now=now)
            self.pending = (msg, now)
            self._node.frames_ready.notify()

    def record_bad_input(self, exc: BadImageError) -> None:
        self.counters.add_bad_input(exc.kind)
        self.recent.add("bad_input")
        self._node.log_throttled(self, exc.kind, f"{self.input_topic}: bad input image dropped: {exc}")

    def record_failure(self, kind: str, text: str) -> None:
        self.counters.failed += 1
        self.recent.add("failed")
        self._node.log_throttled(self, kind, text)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _incompatible_qos(self, event: Any) -> None:
        self._node.log_throttled(
            self,
            "qos",
            f"{self.input_topic}: a publisher's QoS is incompatible with input_reliability="
            f"{self._node.settings.input_reliability} (best-effort publishers need input_reliability:=best_effort)",
        )

    def take(self) -> Optional[tuple[Any, float]]:
        frame, self.pending = self.pending, None
        return frame

    def wanted_outputs(self, settings: NodeSettings) -> Set[str]:
        """Enabled outputs, less those nobody subscribes to, raw or compressed (with skip_unsubscribed; statistics
        included)."""
        wanted = set(settings.outputs)
        if settings.skip_unsubscribed:
            wanted = {kind for kind in wanted if self.subscribed(kind) or self.subscribed(kind, compressed=True)}
        return wanted

    def subscribed(self, kind: str, compressed: bool = False) -> bool:
        publisher = (self.compressed_publishers if compressed else self.publishers).get(kind)
        return publisher is not None and publisher.get_subscription_count() > 0


PredictorLoader = Callable[[NodeSettings], DevicePredictor]


@dataclass
class TakenFrame:
    """A frame the worker took from a camera's slot, converted to BGR."""

    camera: Camera
    msg: Any
    received_at: float  # monotonic
    image: Optional[np.ndarray] = None
    wanted: Set[str] = frozenset()
    convert_ms: float = 0.0


class SegmentationCore:
    """The segmentation steps of a node; mixed into an rclpy ``Node`` (plain or lifecycle) that calls
    ``init_segmentation`` after its own ``__init__``.

    Steps: ``load_model`` / ``free_model``, ``create_cameras`` (publishers) / ``destroy_cameras``,
    ``start_serving`` (label_info, subscriptions, worker) / ``stop_serving``.
    """

    def init_segmentation(self) -> None:
        """Declare and check the parameters (raises ParameterError), the parameter callbacks and diagnostics."""
        self.settings = declare_parameters(self)
        self.predictor: Optional[DevicePredictor] = None
        self.processor: Optional[FrameProcessor] = None
        self.model_name = self.settings.model
        self.dcnv3_backend = ""
        self.frames_ready = threading.Condition()
        self.serving = False
        self._stopping = True
        self._worker: Optional[threading.Thread] = None
        self._last_log: Dict[tuple, float] = {}
        self.cameras: List[Camera] = []
        if hasattr(self, "add_post_set_parameters_callback"):
            self.add_on_set_parameters_callback(self._check_parameters)
            self.add_post_set_parameters_callback(self._apply_parameters)
        else:  # Humble: no post-set callback, so the checked values are applied where they are checked
            self.add_on_set_parameters_callback(self._check_and_apply_parameters)
        if LabelInfo is None:
            self.get_logger().info("vision_msgs (4.1 or newer) is not installed: no segmentation/label_info topic")
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0 / self.settings.diagnostics_rate, self.publish_diagnostics)

    # ------------------------------------------------------------------ steps

    def load_model(self, predictor: DevicePredictor) -> None:
        self.predictor = predictor
        self.processor = FrameProcessor(predictor)
        self.model_name = getattr(getattr(predictor.model, "cfg", None), "name", self.settings.model)
        self.dcnv3_backend = dcnv3_backend_name(predictor.device.type, self.settings.dcnv3_backend)
        if self.settings.cuda_graphs and predictor.device.type != "cuda":
            self.get_logger().info(f"cuda_graphs is ignored on {predictor.device} (CUDA only)")

    def free_model(self) -> None:
        """Drop the model; on a GPU its memory goes back to the device (the allocator's cache emptied)."""
        device = self.predictor.device if self.predictor is not None else None
        self.predictor = self.processor = None
        if device is not None and device.type == "cuda":
            import torch

            gc.collect()  # tensors held only by reference cycles would keep their blocks
            torch.cuda.empty_cache()

    def create_cameras(self) -> None:
        self.cameras = [Camera(self, topic) for topic in self.settings.image_topics]

    def destroy_cameras(self) -> None:
        for camera in self.cameras:
            camera.destroy()
        self.cameras = []

    def start_serving(self) -> None:
        """Publish the class map, subscribe every camera and start the worker."""
        stamp = self.get_clock().now().to_msg()
        for camera in self.cameras:
            camera.publish_label_info(stamp)
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="segmentation-worker", daemon=True)
        self._worker.start()
        for camera in self.cameras:
            camera.subscribe()
        self.serving = True
        self.get_logger().info(
            f"{self.model_name} on {self.predictor.device} ({self.settings.precision}, DCNv3 {self.dcnv3_backend}); "
            + "; ".join(f"{c.input_topic} -> {c.output_ns}/" for c in self.cameras)
        )

    def stop_serving(self) -> None:
        """Unsubscribe every camera and stop the worker (a frame being segmented is finished first)."""
        self.serving = False
        for camera in self.cameras:
            camera.unsubscribe()
        with self.frames_ready:
            self._stopping = True
            self.frames_ready.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            if self._worker.is_alive():
                self.get_logger().warning("the segmentation worker did not stop within 30 s")
            self._worker = None

    # ------------------------------------------------------------------ parameters

    def _check_parameters(self, parameters: List[Any]) -> SetParametersResult:
        reasons = [f"{p.name}: {why}" for p in parameters if (why := problem(p.name, p.value))]
        return SetParametersResult(successful=not reasons, reason="; ".join(reasons))

    def _apply_parameters(self, parameters: List[Any]) -> None:
        try:
            self.settings = NodeSettings.from_values({name: self.get_parameter(name).value for name in SPECS})
        except ParameterError as exc:  # not reached: each value was checked before it was set
            self.get_logger().error(str(exc))

    def _check_and_apply_parameters(self, parameters: List[Any]) -> SetParametersResult:
        result = self._check_parameters(parameters)
        if result.successful:
            values = {name: self.get_parameter(name).value for name in SPECS}
            values.update({p.name: p.value for p in parameters})
            self.settings = NodeSettings.from_values(values)
        return result

    # ------------------------------------------------------------------ worker

    def _next_frames(self) -> Optional[List[TakenFrame]]:
        """Block until a camera has a frame or the node stops; then take the frames waiting, at most
        ``max_batch_size``, cameras in turn (the served ones go last)."""
        with self.frames_ready:
            while not self._stopping:
                taken = []
                for camera in list(self.cameras):
                    if len(taken) == self.settings.max_batch_size:
                        break
                    frame = camera.take()
                    if frame is not None:
                        taken.append(TakenFrame(camera, *frame))
                        self.cameras.remove(camera)  # round robin
                        self.cameras.append(camera)
                if taken:
                    return taken
                self.frames_ready.wait(timeout=0.5)
        return None

    def _work(self) -> None:
        while True:
            frames = self._next_frames()
            if frames is None:
                return
            try:
                self.process_frames(frames)
            except Exception as exc:  # noqa: BLE001 - never let one frame stop the worker
                if self._stopping or not rclpy.ok(context=self.context):
                    return
                for frame in frames:
                    frame.camera.record_failure(
                        "failure",
                        f"{frame.camera.input_topic}: frame failed: {type(exc).__name__}: {exc}{raised_at(exc)}",
                    )

    def process_frames(self, frames: List[TakenFrame]) -> None:
        """Convert the taken frames, segment those of one size together and publish each with its own header."""
        settings = self.settings
        ready = [frame for frame in frames if self._convert(frame, settings)]
        for group in batch_groups([frame.image.shape for frame in ready], settings):
            batch = [ready[index] for index in group]
            try:
                results = self.processor.process_batch(
                    [frame.image for frame in batch], settings, [frame.wanted for frame in batch]
                )
            except (RuntimeError, ValueError, MemoryError) as exc:  # out of memory included
                for frame in batch:
                    frame.camera.record_failure("inference", f"{frame.camera.input_topic}: segmentation failed: {exc}")
                continue
            for frame, result in zip(batch, results):
                camera = frame.camera
                result.timings_ms["preprocess"] += frame.convert_ms
                self.publish_outputs(camera, frame.msg.header, frame.image, result, frame.wanted, settings)
                camera.counters.processed += 1
                camera.latency.add(time.monotonic() - frame.received_at)
                camera.batch_sizes.add(len(batch))

    def _convert(self, frame: TakenFrame, settings: NodeSettings) -> bool:
        """Fill ``frame.image`` and ``frame.wanted``; False when the frame is not to be segmented (nobody
        subscribes to its camera's outputs, or a bad input, counted and logged)."""
        camera = frame.camera
        frame.wanted = camera.wanted_outputs(settings)
        if not frame.wanted:  # skip_unsubscribed and nobody listens to any output of this camera
            camera.counters.skipped_unsubscribed += 1
            return False
        try:
            start = time.perf_counter()
            frame.image = image_msg_to_bgr(frame.msg, settings.max_pixels)
            frame.convert_ms = (time.perf_counter() - start) * 1e3
        except BadImageError as exc:  # what the header does not tell: a corrupt JPEG or PNG
            camera.record_bad_input(exc)
            return False
        return True

    def publish_outputs(
        self,
        camera: Camera,
        header: Any,
        image: np.ndarray,
        result: FrameResult,
        wanted: Set[str],
        settings: NodeSettings,
    ) -> None:
        pubs = camera.publishers
        if "labels" in wanted:
            self.publish_image(camera, "labels", result.train_ids, LABELS_ENCODING, header, settings)
        if result.color is not None:
            self.publish_image(camera, "color", result.color, COLOR_ENCODING, header, settings)
        if result.overlay is not None:
            self.publish_image(camera, "overlay", result.overlay, COLOR_ENCODING, header, settings)
        if result.confidence is not None:
            if settings.confidence_encoding == "32FC1":
                confidence = result.confidence.astype(np.float32)
            else:
                confidence = np.clip(result.confidence * 255.0 + 0.5, 0, 255).astype(np.uint8)
            self.publish_image(camera, "confidence", confidence, settings.confidence_encoding, header, settings)
        now = time.monotonic()
        due = settings.statistics_rate == 0 or now - camera.last_statistics_at >= 1.0 / settings.statistics_rate
        if "statistics" in wanted and due:
            camera.last_statistics_at = now
            statistics = statistics_message(header, self.model_name, image.shape[:2], result, settings.class_subset)
            pubs["statistics"].publish(statistics)
        info = camera.camera_info
        if "camera_info" in wanted and info is not None:
            info.header = header
            pubs["camera_info"].publish(info)

    def publish_image(
        self, camera: Camera, kind: str, image: np.ndarray, encoding: str, header: Any, settings: NodeSettings
    ) -> None:
        """The raw image (unless skip_unsubscribed and only its compressed form has subscribers) and, while
        subscribed, ``<topic>/compressed``: PNG for the labels and the mono8 confidence (lossless), JPEG of
        ``jpeg_quality`` for colour and overlay; 32FC1 has no compressed form."""
        if not settings.skip_unsubscribed or camera.subscribed(kind):
            camera.publishers[kind].publish(to_image_msg(image, encoding, header))
        if camera.subscribed(kind, compressed=True) and encoding in COMPRESSIBLE_ENCODINGS:
            quality = settings.jpeg_quality if kind in JPEG_OUTPUTS else None
            camera.compressed_publishers[kind].publish(to_compressed_msg(image, encoding, header, quality))

    # ------------------------------------------------------------------ logging, diagnostics, shutdown

    def log_throttled(self, camera: Camera, kind: str, text: str) -> None:
        """At most one error per (camera, kind) every log_throttle_s seconds."""
        key = (camera.input_topic, kind)
        now = time.monotonic()
        if now - self._last_log.get(key, -float("inf")) >= self.settings.log_throttle_s:
            self._last_log[key] = now
            self.get_logger().error(text)

    def publish_diagnostics(self) -> None:
        if not self.cameras:  # a lifecycle node before configure
            return
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self._camera_status(camera) for camera in self.cameras]
        self.diagnostics_publisher.publish(array)

    def _camera_status(self, camera: Camera) -> DiagnosticStatus:
        c, settings = camera.counters, self.settings
        now = time.monotonic()
        camera.recent.window_s = settings.health_window_s
        recent = camera.recent.counts(now)
        silent_s = now - camera.last_frame_at if camera.last_frame_at is not None else 0.0
        if camera.sequence_gaps.known or not c.received:
            lost = str(c.lost)
        else:
            lost = "n/a (the middleware gives no publication sequence numbers)"
        values = {
            "input_topic": camera.input_topic,
            "model": self.model_name,
            "device": str(self.predictor.device) if self.predictor is not None else "",
            "precision": settings.precision,
            "dcnv3_backend": self.dcnv3_backend,
            "fps": f"{camera.latency.fps():.2f}",
            "input_fps": f"{recent.get('received', 0) / camera.recent.window_s:.2f}",
            "latency_p50_ms": f"{camera.latency.percentile_ms(50):.1f}",
            "latency_p95_ms": f"{camera.latency.percentile_ms(95):.1f}",
            "seconds_since_last_frame": f"{silent_s:.1f}",
            "received": str(c.received),
            "processed": str(c.processed),
            "dropped": str(c.dropped),
            "lost": lost,
            "bad_inputs": str(c.bad_inputs),
            "failed": str(c.failed),
            "skipped_unsubscribed": str(c.skipped_unsubscribed),
            "recent_window_s": f"{camera.recent.window_s:g}",
            **{f"recent_{kind}": str(recent.get(kind, 0)) for kind in RECENT_KINDS},
            "batch_size_mean": f"{camera.batch_sizes.mean():.2f}",
            "batch_size_max": str(camera.batch_sizes.largest()),
            "cuda_graphs": self._graphs_state(),
        }
        values.update({f"bad_inputs.{kind}": str(n) for kind, n in sorted(c.bad_input_kinds.items())})
        window_s = camera.recent.window_s
        health = camera_health(self.serving, c.processed, silent_s, settings.frame_timeout_s, recent, window_s)
        return DiagnosticStatus(
            level=DIAGNOSTIC_LEVELS[health.level],
            name=f"{self.get_name()}: {camera.input_topic}",
            message=health.message,
            hardware_id=values["device"],
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )

    def _graphs_state(self) -> str:
        if self.predictor is None or self.predictor.device.type != "cuda":
            return "n/a (not on CUDA)"
        graphs = self.predictor.graph_forward
        return f"on ({graphs.held} captured)" if graphs.enabled else "off"

    def destroy_node(self) -> None:
        self.stop_serving()
        super().destroy_node()


class SegmentationNode(SegmentationCore, Node):
    """The ROS 2 node: serves from construction. ``predictor`` may be given (tests), otherwise the parameters'
    model is built."""

    def __init__(self, predictor: Optional[DevicePredictor] = None, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.init_segmentation()
        self.load_model(predictor if predictor is not None else load_predictor(self.settings))
        self.create_cameras()
        self.start_serving()


def raised_at(exc: BaseException) -> str:
    """`` (at file.py:line in function)``: where an unexpected error was raised, for the one-line log."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    where = frames[-1]
    return f" (at {Path(where.filename).name}:{where.lineno} in {where.name})"
