"""cityscapes_seg_node in this process with real rclpy and DDS: outputs, statistics, the class map, bad input,
runtime parameters, no inference without subscribers, and a fast camera into a slow model."""

import copy
import gc
import re
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("cityscapes_seg_ros.msg", reason="messages not built (scripts/build_msgs.sh)")

from cityscapes_seg_ros.msg import ClassStatistics  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from support.ros_probe import Probe, bgr_msg, make_context  # noqa: E402

from cityscapes_seg_ros import build_segmentor  # noqa: E402
from cityscapes_seg_ros.labels import TRAIN_CLASS_NAMES, TRAIN_ID_PALETTE  # noqa: E402
from cityscapes_seg_ros.node.node import SegmentationNode  # noqa: E402
from cityscapes_seg_ros.node.pipeline import DevicePredictor  # noqa: E402
from cityscapes_seg_ros.visualize import overlay  # noqa: E402

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

SEG = "/cam/front/segmentation"
IMAGE = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_19_class_model(tiny_t_fixture):
    """The tiny InternImage-T-like model with a 19-class head and random weights."""
    config = copy.deepcopy(tiny_t_fixture["config"])
    config["decode_head"]["num_classes"] = 19
    config.get("auxiliary_head", {}).update(num_classes=19)
    return build_segmentor(config, None, "cpu").eval()


@pytest.fixture
def context():
    context = make_context()
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture
def start_node(context, tiny_19_class_model):
    """start_node(**parameters) -> a SegmentationNode spinning in a background thread, and a probe node."""
    started = []

    def start(model=None, **parameters):
        parameters.setdefault("image_topics", ["/cam/front/image_raw"])
        parameters.setdefault("inference_size", [64, 32])
        parameters.setdefault("dcnv3_backend", "torch")  # the tiny models do not need the compiled op built
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        predictor = DevicePredictor(model or tiny_19_class_model, img_scale=tuple(parameters["inference_size"]))
        node = SegmentationNode(predictor=predictor, context=context, parameter_overrides=overrides)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        probe = Probe(context)
        started.append((node, executor, probe))
        return node, probe

    yield start
    for node, executor, probe in started:
        probe.close()
        executor.shutdown()
        node.destroy_node()


def all_outputs_arrived(probe, topics):
    return all(probe.messages(t) for t in topics)


def test_outputs_have_the_input_size_encodings_and_header(start_node, tiny_19_class_model):
    node, probe = start_node(
        outputs=["labels", "color", "overlay", "confidence", "statistics", "camera_info"],
        confidence_encoding="32FC1",
        overlay_alpha=0.4,
    )
    kinds = {
        "labels": Image,
        "color": Image,
        "overlay": Image,
        "confidence": Image,
        "statistics": ClassStatistics,
        "camera_info": CameraInfo,
    }
    for kind, msg_type in kinds.items():
        probe.listen(msg_type, f"{SEG}/{kind}")
    images = probe.publisher(Image, "/cam/front/image_raw")
    info = probe.publisher(CameraInfo, "/cam/front/camera_info")
    info_msg = CameraInfo(width=64, height=48, distortion_model="plumb_bob")

    def publish():
        info.publish(info_msg)
        images.publish(bgr_msg(IMAGE, "front_optical", 7, 123))

    topics = [f"{SEG}/{kind}" for kind in kinds]
    assert probe.wait_for(lambda: all_outputs_arrived(probe, topics), publish=publish), "outputs missing"

    got = {kind: probe.messages(f"{SEG}/{kind}")[-1] for kind in kinds}
    for kind, msg in got.items():
        assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("front_optical", 7, 123), kind
    assert [(got[k].encoding, got[k].height, got[k].width) for k in ("labels", "color", "overlay", "confidence")] == [
        ("mono8", 48, 64),
        ("rgb8", 48, 64),
        ("rgb8", 48, 64),
        ("32FC1", 48, 64),
    ]
    labels = np.frombuffer(got["labels"].data, np.uint8).reshape(48, 64)
    expected = DevicePredictor(tiny_19_class_model, img_scale=(64, 32)).predict(IMAGE)
    np.testing.assert_array_equal(labels, expected.train_ids)  # the node segments as the offline API does
    color = np.frombuffer(got["color"].data, np.uint8).reshape(48, 64, 3)
    np.testing.assert_array_equal(color, TRAIN_ID_PALETTE[labels])
    blended = np.frombuffer(got["overlay"].data, np.uint8).reshape(48, 64, 3)
    np.testing.assert_array_equal(blended, overlay(IMAGE[:, :, ::-1], labels, 0.4))
    confidence = np.frombuffer(got["confidence"].data, np.float32).reshape(48, 64)
    np.testing.assert_allclose(confidence, expected.confidence, rtol=1e-5)
    assert (got["camera_info"].width, got["camera_info"].distortion_model) == (64, "plumb_bob")

    stats = got["statistics"]
    assert (stats.height, stats.width, len(stats.classes), stats.model) == (48, 64, 19, node.model_name)
    assert stats.inference_ms > 0 and stats.preprocess_ms > 0 and stats.postprocess_ms > 0
    counts = np.bincount(labels.ravel(), minlength=256)
    assert stats.ignored_pixel_count == counts[255]
    for entry in stats.classes:
        assert entry.pixel_count == counts[entry.train_id]
        assert entry.fraction == pytest.approx(counts[entry.train_id] / labels.size)
        if entry.pixel_count:
            assert entry.mean_confidence == pytest.approx(confidence[labels == entry.train_id].mean(), rel=1e-4)
        else:
            assert np.isnan(entry.mean_confidence)


def test_bad_inputs_are_logged_counted_and_the_node_keeps_serving(start_node, capfd):
    node, probe = start_node(max_pixels=64 * 48, outputs=["labels", "statistics"])
    probe.listen(Image, f"{SEG}/labels")
    probe.listen(DiagnosticArray, "/diagnostics")
    images = probe.publisher(Image, "/cam/front/image_raw")
    counters = node.cameras[0].counters
    good = bgr_msg(IMAGE)
    assert probe.wait_for(lambda: probe.messages(f"{SEG}/labels"), publish=lambda: images.publish(good))

    def bad(**fields):
        msg = bgr_msg(IMAGE)
        for name, value in fields.items():
            setattr(msg, name, value)
        return msg

    bad_inputs = [
        bad(encoding="yuv422"),
        bad(step=100),
        bad(data=bytes(good.data[:-10])),
        bad(height=0, width=0, step=0, data=b""),
        bgr_msg(np.zeros((49, 64, 3), np.uint8)),  # one row above max_pixels
    ]
    for count, msg in enumerate(bad_inputs, start=1):
        images.publish(msg)
        assert probe.wait_for(lambda: counters.bad_inputs == count, timeout=20), f"bad input {count} not counted"
    before = len(probe.messages(f"{SEG}/labels"))
    assert probe.wait_for(lambda: len(probe.messages(f"{SEG}/labels")) > before, publish=lambda: images.publish(good))

    assert counters.bad_input_kinds == {
        "unsupported_encoding": 1,
        "bad_step": 1,
        "size_mismatch": 1,
        "empty": 1,
        "too_large": 1,
    }
    assert probe.wait_for(lambda: any(_diagnostic(m, "bad_inputs") == "5" for m in probe.messages("/diagnostics")))
    status_values = _values(probe.messages("/diagnostics")[-1])
    assert {"fps", "latency_p50_ms", "latency_p95_ms", "dropped", "device", "dcnv3_backend", "model"} <= set(
        status_values
    )
    assert status_values["device"] == "cpu" and status_values["bad_inputs.too_large"] == "1"
    err = capfd.readouterr().err
    for words in ("unsupported encoding 'yuv422'", "step 100", "data holds", "exceeds max_pixels 3072"):
        assert re.search(r"\[ERROR\].*/cam/front/image_raw: bad input image dropped: .*" + re.escape(words), err), words


def _values(diagnostics: DiagnosticArray) -> dict:
    return {kv.key: kv.value for kv in diagnostics.status[0].values}


def _diagnostic(diagnostics: DiagnosticArray, key: str):
    return _values(diagnostics).get(key) if diagnostics.status else None


def test_compressed_input_and_a_corrupt_jpeg(start_node):
    import cv2

    node, probe = start_node(input_transport="compressed", outputs=["labels"])
    probe.listen(Image, f"{SEG}/labels")
    compressed = probe.publisher(CompressedImage, "/cam/front/image_raw/compressed")
    jpeg = cv2.imencode(".jpg", IMAGE)[1].tobytes()
    good = CompressedImage(format="jpeg", data=jpeg)
    good.header.frame_id = "front"
    assert probe.wait_for(lambda: probe.messages(f"{SEG}/labels"), publish=lambda: compressed.publish(good))
    labels = probe.messages(f"{SEG}/labels")[-1]
    assert (labels.width, labels.height, labels.header.frame_id) == (64, 48, "front")
    compressed.publish(CompressedImage(format="jpeg", data=jpeg[: len(jpeg) // 3]))
    assert probe.wait_for(lambda: node.cameras[0].counters.bad_input_kinds.get("corrupt") == 1, timeout=20)


def test_runtime_parameter_changes_are_checked_and_applied(start_node):
    node, probe = start_node(outputs=["labels", "statistics"])
    rejected = {
        "overlay_alpha": (1.5, "out of range"),
        "mode": ("tiles", "'tiles' is not one of whole, slide"),
        "classes": (["road", "unicorn"], "unknown class(es) ['unicorn']"),
        "model": ("upernet_internimage_xl_512x1024_160k_cityscapes", "read-only"),
        "outputs": (["labels", "labels"], "listed twice"),
    }
    for name, (value, reason) in rejected.items():
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and reason in result.reason, (name, result.reason)
    assert node.settings.overlay_alpha == 0.5 and node.settings.mode == "whole"

    assert node.set_parameters([Parameter("classes", value=["road", "car"])])[0].successful
    assert node.settings.class_subset == (0, 13)
    probe.listen(ClassStatistics, f"{SEG}/statistics")
    probe.listen(Image, f"{SEG}/labels")
    images = probe.publisher(Image, "/cam/front/image_raw")
    assert probe.wait_for(
        lambda: probe.messages(f"{SEG}/statistics") and probe.messages(f"{SEG}/labels"),
        publish=lambda: images.publish(bgr_msg(IMAGE)),
    )
    stats = probe.messages(f"{SEG}/statistics")[-1]
    assert [c.name for c in stats.classes] == ["road", "car"]
    labels = np.frombuffer(probe.messages(f"{SEG}/labels")[-1].data, np.uint8)
    assert set(np.unique(labels)) <= {0, 13, 255}
    assert stats.ignored_pixel_count == np.count_nonzero(labels == 255)


def test_a_healthy_node_reports_ok_and_array_parameters_set_at_runtime_are_taken(start_node):
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue

    node, probe = start_node(outputs=["labels"])
    probe.listen(Image, f"{SEG}/labels")
    probe.listen(DiagnosticArray, "/diagnostics")
    images = probe.publisher(Image, "/cam/front/image_raw")
    assert probe.wait_for(lambda: probe.messages(f"{SEG}/labels"), publish=lambda: images.publish(bgr_msg(IMAGE)))
    assert probe.wait_for(
        lambda: any(_diagnostic(m, "processed") not in (None, "0") for m in probe.messages("/diagnostics"))
    )
    status = next(m for m in reversed(probe.messages("/diagnostics")) if _diagnostic(m, "processed") != "0").status[0]
    assert (status.level, status.message) == (DiagnosticStatus.OK, "segmenting")

    # As `ros2 param set /cityscapes_seg_node inference_size "[96, 48]"` delivers it: an array('q').
    value = ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=[96, 48])
    parameter = Parameter.from_parameter_msg(ParameterMsg(name="inference_size", value=value))
    assert type(parameter.value).__name__ == "array"
    result = node.set_parameters([parameter])[0]
    assert result.successful, result.reason
    assert node.settings.inference_size == (96, 48)


@pytest.mark.parametrize("height, width", [(1, 1), (1, 400), (400, 1), (3, 1000)])
def test_valid_frames_of_extreme_shapes_are_segmented_not_failed(start_node, height, width):
    node, probe = start_node(outputs=["labels", "color", "overlay", "statistics"])
    probe.listen(Image, f"{SEG}/labels")
    probe.listen(Image, f"{SEG}/overlay")
    images = probe.publisher(Image, "/cam/front/image_raw")
    frame = bgr_msg(np.random.default_rng(height + width).integers(0, 256, (height, width, 3), dtype=np.uint8))
    assert probe.wait_for(
        lambda: probe.messages(f"{SEG}/labels") and probe.messages(f"{SEG}/overlay"),
        publish=lambda: images.publish(frame),
    ), node.cameras[0].counters
    labels = probe.messages(f"{SEG}/labels")[-1]
    assert (labels.height, labels.width) == (height, width)
    counters = node.cameras[0].counters
    assert counters.failed == 0 and counters.bad_inputs == 0


def test_a_frame_that_fails_is_logged_with_where_and_the_node_goes_on(start_node, tiny_19_class_model, capfd):
    def failing_head_logits(x):  # a bug, not a RuntimeError such as CUDA out of memory (logged without a place)
        raise KeyError("missing layer")

    original = tiny_19_class_model.head_logits
    tiny_19_class_model.head_logits = failing_head_logits
    try:
        node, probe = start_node(model=tiny_19_class_model, outputs=["labels"])
        probe.listen(Image, f"{SEG}/labels")
        images = probe.publisher(Image, "/cam/front/image_raw")
        frame = bgr_msg(np.random.default_rng(7).integers(0, 256, (48, 96, 3), dtype=np.uint8))
        camera = node.cameras[0]
        assert probe.wait_for(lambda: camera.counters.failed > 0, publish=lambda: images.publish(frame))
    finally:
        tiny_19_class_model.head_logits = original
    # The same node segments the next frame once the network works again.
    assert probe.wait_for(lambda: probe.messages(f"{SEG}/labels"), publish=lambda: images.publish(frame))
    logged = capfd.readouterr().err
    assert "frame failed: KeyError: 'missing layer' (at test_node.py:" in logged, logged
    assert "in failing_head_logits)" in logged


class SlowModel:
    """Wraps the network run the node calls (``head_logits``) with a delay: a network slower than the camera.

    ``asleep`` is set while the node's worker waits in the delay, i.e. in no C call of its own.
    """

    def __init__(self, model, delay_s):
        self.model, self.delay_s = model, delay_s
        self.asleep = threading.Event()

    def __enter__(self):
        self.original = self.model.head_logits

        def slow_head_logits(x):
            self.asleep.set()
            time.sleep(self.delay_s)
            self.asleep.clear()
            return self.original(x)

        self.model.head_logits = slow_head_logits
        return self

    def __exit__(self, *exc):
        self.model.head_logits = self.original


def frames_alive(nbytes: int) -> int:
    """Image messages of ``nbytes`` of data held anywhere in this process (the node's slot, its worker, ...).

    Only while the worker sleeps in ``SlowModel``: gc.get_objects() also lists a tuple that another thread's C
    code is still filling (torch's dispatch of a Python kernel), whose filling then fails with a SystemError.
    """
    return sum(1 for obj in gc.get_objects() if type(obj) is Image and len(obj.data) == nbytes)


def test_a_30_hz_camera_into_a_slow_model_keeps_the_newest_frame(start_node, tiny_19_class_model):
    with SlowModel(tiny_19_class_model, 0.3) as slow:
        node, probe = start_node(model=slow.model, outputs=["labels"])
        probe.listen(Image, f"{SEG}/labels")
        images = probe.publisher(Image, "/cam/front/image_raw")
        frame = np.random.default_rng(4).integers(0, 256, (720, 960, 3), dtype=np.uint8)  # 2 MB
        msg = bgr_msg(frame, stamp_sec=0)
        assert probe.wait_for(lambda: probe.messages(f"{SEG}/labels"), publish=lambda: images.publish(msg))
        camera = node.cameras[0]
        alive, largest_slot = [], 0
        sent = 120  # 4 s at 30 Hz: 240 MB of images
        publishing_started = time.monotonic()
        for index in range(1, sent + 1):
            msg.header.stamp.sec = index
            images.publish(msg)
            largest_slot = max(largest_slot, int(camera.pending is not None))
            if index % 10 == 0 and slow.asleep.wait(timeout=1.0):
                alive.append(frames_alive(frame.nbytes))
            time.sleep(1 / 30)
        counters = camera.counters
        assert probe.wait_for(lambda: probe.messages(f"{SEG}/labels")[-1].header.stamp.sec == sent, timeout=30)
        time.sleep(0.5)  # let a wrongly queued older frame show up, if there were one
        assert probe.messages(f"{SEG}/labels")[-1].header.stamp.sec == sent  # the newest frame was processed last
        # Frames are dropped, not queued: the slow model (0.3 s a frame) got at most one frame per 0.3 s of the run
        # (however long a loaded machine made it), the rest were replaced in the slot.
        run_seconds = time.monotonic() - publishing_started
        assert counters.dropped > 0 and counters.processed <= run_seconds / 0.3 + 2
        assert counters.received == counters.processed + counters.dropped + counters.skipped_unsubscribed
        # Memory is bounded: besides the probe's own message, only the frame waiting in the slot and the one
        # being segmented are alive, however far the publisher is ahead.
        assert len(alive) >= 8 and largest_slot <= 1 and max(alive) <= 3, alive
        stamps = [m.header.stamp.sec for m in probe.messages(f"{SEG}/labels")]
        assert stamps == sorted(stamps)


def test_the_class_map_reaches_a_subscriber_that_joins_late(start_node):
    vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built (scripts/build_vision_msgs.sh)")
    node, probe = start_node(outputs=["labels"])
    probe.listen(Image, f"{SEG}/labels")
    images = probe.publisher(Image, "/cam/front/image_raw")
    assert probe.wait_for(lambda: probe.messages(f"{SEG}/labels"), publish=lambda: images.publish(bgr_msg(IMAGE)))
    # Joins well after the node published its one LabelInfo: transient local keeps it for late subscribers.
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    probe.listen(vision_msgs.LabelInfo, f"{SEG}/label_info", latched)
    assert probe.wait_for(lambda: probe.messages(f"{SEG}/label_info"), timeout=30)
    time.sleep(0.5)
    received = probe.messages(f"{SEG}/label_info")
    assert len(received) == 1  # published once, not per frame
    class_map = {c.class_id: c.class_name for c in received[0].class_map}
    assert len(received[0].class_map) == 20
    assert class_map == {**dict(enumerate(TRAIN_CLASS_NAMES)), 255: "unlabeled"}
    assert class_map[0] == "road" and class_map[18] == "bicycle"


class CountingModel:
    """Counts the calls of a model's forward (the network run), passing them through."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __enter__(self):
        self.original = self.model.head_logits

        def forward(x):
            self.calls += 1
            return self.original(x)

        self.model.head_logits = forward
        return self

    def __exit__(self, *exc):
        self.model.head_logits = self.original


def test_no_inference_while_nobody_subscribes_then_a_statistics_subscriber_gets_frames_segmented(
    start_node, tiny_19_class_model
):
    with CountingModel(tiny_19_class_model) as counting:
        node, probe = start_node(model=counting.model, outputs=["labels", "statistics"], skip_unsubscribed=True)
        images = probe.publisher(Image, "/cam/front/image_raw")
        counters = node.cameras[0].counters
        assert probe.wait_for(
            lambda: counters.skipped_unsubscribed >= 5, publish=lambda: images.publish(bgr_msg(IMAGE)), every=0.1
        )
        assert counting.calls == 0 and counters.processed == 0 and counters.received >= 5

        probe.listen(ClassStatistics, f"{SEG}/statistics")  # statistics alone make the camera worth segmenting
        assert probe.wait_for(
            lambda: probe.messages(f"{SEG}/statistics"), publish=lambda: images.publish(bgr_msg(IMAGE))
        )
        assert counting.calls >= 1 and counters.processed >= 1
        assert probe.messages(f"{SEG}/statistics")[-1].height == IMAGE.shape[0]


def test_without_skip_unsubscribed_frames_are_segmented_for_nobody(start_node, tiny_19_class_model):
    with CountingModel(tiny_19_class_model) as counting:
        node, probe = start_node(model=counting.model, outputs=["labels"], skip_unsubscribed=False)
        images = probe.publisher(Image, "/cam/front/image_raw")
        counters = node.cameras[0].counters
        assert probe.wait_for(lambda: counters.processed >= 2, publish=lambda: images.publish(bgr_msg(IMAGE)))
        assert counting.calls >= 2 and counters.skipped_unsubscribed == 0


class GatedModel:
    """Records the batch size of each forward; the first forward waits until ``release()`` (the worker is held
    there while the test lines up frames)."""

    def __init__(self, model):
        self.model, self.batch_sizes = model, []
        self.entered, self._gate = threading.Event(), threading.Event()

    def __enter__(self):
        self.original = self.model.head_logits

        def forward(x):
            self.batch_sizes.append(x.shape[0])
            if len(self.batch_sizes) == 1:
                self.entered.set()
                self._gate.wait(timeout=60)
            return self.original(x)

        self.model.head_logits = forward
        return self

    def release(self):
        self._gate.set()

    def __exit__(self, *exc):
        self._gate.set()
        self.model.head_logits = self.original


def test_frames_waiting_on_two_cameras_share_one_forward_and_keep_their_own_header(start_node, tiny_19_class_model):
    rng = np.random.default_rng(8)
    front_image, rear_image = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2))
    topics = {"front": "/cam/front/image_raw", "rear": "/cam/rear/image_raw"}
    with GatedModel(tiny_19_class_model) as gated:
        node, probe = start_node(
            model=gated.model,
            image_topics=list(topics.values()),
            max_batch_size=4,
            skip_unsubscribed=False,
            outputs=["labels", "confidence"],
            confidence_encoding="32FC1",
        )
        for camera in topics:
            probe.listen(Image, f"/cam/{camera}/segmentation/labels")
            probe.listen(Image, f"/cam/{camera}/segmentation/confidence")
        probe.listen(DiagnosticArray, "/diagnostics")
        publishers = {camera: probe.publisher(Image, topic) for camera, topic in topics.items()}
        # The worker takes a first frame and is held in its forward ...
        assert probe.wait_for(gated.entered.is_set, publish=lambda: publishers["front"].publish(bgr_msg(front_image)))
        # ... while one newer frame per camera arrives and waits.
        newer = {
            "front": bgr_msg(front_image, "front_optical", 2, 11),
            "rear": bgr_msg(rear_image, "rear_optical", 2, 22),
        }
        by_topic = {camera.image_topic: camera for camera in node.cameras}

        def both_waiting():
            pending = [by_topic[topic].pending for topic in topics.values()]
            return all(p is not None and p[0].header.stamp.sec == 2 for p in pending)

        assert probe.wait_for(both_waiting, publish=lambda: [publishers[c].publish(m) for c, m in newer.items()])
        gated.release()
        outputs = [f"/cam/{camera}/segmentation/{kind}" for camera in topics for kind in ("labels", "confidence")]
        assert probe.wait_for(lambda: all(any(m.header.stamp.sec == 2 for m in probe.messages(t)) for t in outputs))

    assert gated.batch_sizes[:2] == [1, 2], gated.batch_sizes  # the two waiting frames: one forward
    single = DevicePredictor(tiny_19_class_model, img_scale=(64, 32))
    for camera, image in (("front", front_image), ("rear", rear_image)):
        labels, confidence = (
            next(m for m in probe.messages(f"/cam/{camera}/segmentation/{kind}") if m.header.stamp.sec == 2)
            for kind in ("labels", "confidence")
        )
        for msg in (labels, confidence):
            assert (msg.header.frame_id, msg.header.stamp.nanosec) == (
                newer[camera].header.frame_id,
                newer[camera].header.stamp.nanosec,
            )
        expected = single.predict(image)  # the frame segmented alone
        np.testing.assert_array_equal(np.frombuffer(labels.data, np.uint8).reshape(48, 64), expected.train_ids)
        np.testing.assert_allclose(
            np.frombuffer(confidence.data, np.float32).reshape(48, 64), expected.confidence, rtol=1e-5
        )
    assert {camera.batch_sizes.largest() for camera in node.cameras} == {2}
    assert probe.wait_for(
        lambda: any(
            len(m.status) == 2 and {_values_of(s)["batch_size_max"] for s in m.status} == {"2"}
            for m in probe.messages("/diagnostics")
        )
    )


def _values_of(status: DiagnosticStatus) -> dict:
    return {kv.key: kv.value for kv in status.values}


def test_on_the_cpu_cuda_graphs_is_ignored_with_one_info_line_and_batching_changes_at_runtime(start_node, capfd):
    node, probe = start_node(outputs=["labels"], cuda_graphs=True)
    err = capfd.readouterr().err
    assert len(re.findall(r"\[INFO\].*cuda_graphs is ignored on cpu", err)) == 1, err
    assert not node.predictor.graph_forward.enabled
    assert node.set_parameters([Parameter("max_batch_size", value=3)])[0].successful
    assert node.settings.max_batch_size == 3
    result = node.set_parameters([Parameter("max_batch_size", value=0)])[0]
    assert not result.successful and node.settings.max_batch_size == 3
    assert node.set_parameters([Parameter("cuda_graphs", value=False)])[0].successful
    probe.listen(DiagnosticArray, "/diagnostics")
    assert probe.wait_for(
        lambda: any(_diagnostic(m, "cuda_graphs") == "n/a (not on CUDA)" for m in probe.messages("/diagnostics"))
    )


# ---------------------------------------------------------------------------------- /diagnostics over time


def _statuses(probe) -> list:
    """Every camera status published so far, as (input topic, level, message, values)."""
    found = []
    for array in probe.messages("/diagnostics"):
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            found.append((values["input_topic"], status.level, status.message, values))
    return found


def test_a_camera_without_frames_goes_warn_then_stale_while_the_other_stays_ok(start_node):
    front, rear = "/cam/front/image_raw", "/cam/rear/image_raw"
    node, probe = start_node(
        image_topics=[front, rear],
        outputs=["labels"],
        skip_unsubscribed=False,
        frame_timeout_s=1.0,
        diagnostics_rate=10.0,
    )
    probe.listen(DiagnosticArray, "/diagnostics")
    publishers = {topic: probe.publisher(Image, topic) for topic in (front, rear)}
    counters = {camera.input_topic: camera.counters for camera in node.cameras}

    def publish(topics):
        for topic in topics:
            publishers[topic].publish(bgr_msg(IMAGE))

    assert probe.wait_for(
        lambda: all(counters[t].processed for t in (front, rear)), publish=lambda: publish([front, rear]), every=0.1
    )
    start = len(probe.messages("/diagnostics"))

    def seen(topic, level, since):
        return any(t == topic and lv == level for t, lv, _, _ in _statuses(probe)[since:])

    # The rear camera's publisher stops: WARN after frame_timeout_s, STALE after twice that; the front stays OK.
    assert probe.wait_for(
        lambda: seen(rear, DiagnosticStatus.STALE, start), publish=lambda: publish([front]), every=0.1
    )
    statuses = _statuses(probe)
    rear_levels = [lv for t, lv, _, _ in statuses[start:] if t == rear]
    assert DiagnosticStatus.WARN in rear_levels and rear_levels.index(DiagnosticStatus.WARN) < rear_levels.index(
        DiagnosticStatus.STALE
    )
    stale = next(s for s in reversed(statuses) if s[0] == rear and s[1] == DiagnosticStatus.STALE)
    assert stale[2].startswith("no frames for") and float(stale[3]["seconds_since_last_frame"]) >= 2.0
    assert seen(front, DiagnosticStatus.OK, start)

    # Frames again: back to OK.
    again = len(probe.messages("/diagnostics"))
    assert probe.wait_for(
        lambda: seen(rear, DiagnosticStatus.OK, again), publish=lambda: publish([front, rear]), every=0.1
    )


def test_a_bad_frame_warns_only_until_a_window_of_good_frames_has_passed(start_node):
    node, probe = start_node(
        outputs=["labels"], skip_unsubscribed=False, health_window_s=3.0, diagnostics_rate=10.0, frame_timeout_s=60.0
    )
    probe.listen(DiagnosticArray, "/diagnostics")
    images = probe.publisher(Image, "/cam/front/image_raw")
    counters = node.cameras[0].counters
    assert probe.wait_for(lambda: counters.processed, publish=lambda: images.publish(bgr_msg(IMAGE)))
    bad = bgr_msg(IMAGE)
    bad.encoding = "yuv422"
    images.publish(bad)
    assert probe.wait_for(lambda: counters.bad_inputs == 1, timeout=20)
    start = len(probe.messages("/diagnostics"))
    assert probe.wait_for(lambda: any(lv == DiagnosticStatus.WARN for _, lv, _, _ in _statuses(probe)[start:]))
    warn = next(s for s in _statuses(probe)[start:] if s[1] == DiagnosticStatus.WARN)
    assert warn[2] == "1 bad input in the last 3 s" and warn[3]["recent_bad_input"] == "1"
    # Good frames keep coming: after the window the camera is OK again; the total still says what happened.
    assert probe.wait_for(
        lambda: any(lv == DiagnosticStatus.OK and v["bad_inputs"] == "1" for _, lv, _, v in _statuses(probe)[start:]),
        publish=lambda: images.publish(bgr_msg(IMAGE)),
        every=0.1,
    )
    ok = next(s for s in _statuses(probe)[start:] if s[1] == DiagnosticStatus.OK)
    assert ok[2] == "segmenting" and ok[3]["recent_bad_input"] == "0"


def test_every_bad_frame_is_counted_as_bad_while_the_worker_is_busy(start_node, tiny_19_class_model):
    with SlowModel(tiny_19_class_model, 1.0) as slow:
        node, probe = start_node(model=slow.model, outputs=["labels"])
        probe.listen(Image, f"{SEG}/labels")
        images = probe.publisher(Image, "/cam/front/image_raw")
        assert probe.wait_for(lambda: probe.messages(f"{SEG}/labels"), publish=lambda: images.publish(bgr_msg(IMAGE)))
        counters = node.cameras[0].counters
        bad_count = 30
        for index in range(bad_count):  # bad and good frames interleaved, far faster than the worker takes them
            bad = bgr_msg(IMAGE, stamp_sec=index)
            bad.step = 5
            images.publish(bad)
            images.publish(bgr_msg(IMAGE, stamp_sec=index))
            time.sleep(0.01)
        assert probe.wait_for(lambda: counters.received >= 2 * bad_count + 1, timeout=30)
        assert counters.bad_inputs == bad_count and counters.bad_input_kinds == {"bad_step": bad_count}
        # Every frame is accounted for once: segmented, replaced by a newer one, or bad (the last one may still be
        # in the network when the counts are read).
        accounted = lambda: counters.processed + counters.dropped + counters.bad_inputs  # noqa: E731
        assert probe.wait_for(lambda: accounted() == counters.received, timeout=30), counters


@pytest.mark.skipif(
    not hasattr(rclpy.subscription.Subscription, "CallbackType"),
    reason="this rclpy hands no MessageInfo to callbacks (Humble)",
)
def test_frames_lost_before_the_node_are_counted_from_publication_sequence_numbers(start_node):
    """The node's executor is held up while 20 frames go out: its subscription keeps the newest 5 (depth of the
    sensor-data profile), the others never reach the callback and show as gaps in the sequence numbers."""
    node, probe = start_node(outputs=["labels"], skip_unsubscribed=False)
    images = probe.publisher(Image, "/cam/front/image_raw")
    counters = node.cameras[0].counters
    assert probe.wait_for(lambda: counters.received, publish=lambda: images.publish(bgr_msg(IMAGE)))
    time.sleep(1.0)  # frames still in flight from the discovery loop arrive
    received, lost = counters.received, counters.lost
    held, release = threading.Event(), threading.Event()

    def hold_executor():
        timer.cancel()
        held.set()
        release.wait(30)

    timer = node.create_timer(0.01, hold_executor)
    assert held.wait(30)
    sent = 20
    for index in range(sent):
        images.publish(bgr_msg(IMAGE, stamp_sec=index))
    time.sleep(1.0)
    release.set()
    images.publish(bgr_msg(IMAGE, stamp_sec=sent))  # reliable: arrives, and shows the gap before it
    sent += 1
    assert probe.wait_for(lambda: counters.received - received + counters.lost - lost == sent, timeout=30)
    assert counters.lost - lost >= 10, (counters.received - received, counters.lost - lost)


# ---------------------------------------------------------------------------------- <topic>/compressed


def test_compressed_outputs_decode_to_the_raw_ones_and_are_made_only_while_subscribed(start_node):
    import cv2

    node, probe = start_node(outputs=["labels", "color", "overlay", "confidence"], jpeg_quality=95)
    kinds = ("labels", "color", "overlay", "confidence")
    for kind in kinds:
        probe.listen(Image, f"{SEG}/{kind}")
        probe.listen(CompressedImage, f"{SEG}/{kind}/compressed")
    images = probe.publisher(Image, "/cam/front/image_raw")
    rows, columns = np.mgrid[0:48, 0:64]
    image = np.stack([rows * 5, columns * 4, (rows + columns) * 2], axis=-1).astype(np.uint8)  # smooth, as photos are
    stamp = [0]

    def publish():
        stamp[0] += 1
        images.publish(bgr_msg(image, stamp_sec=stamp[0]))

    def same_stamp(kind):
        raw = {m.header.stamp.sec: m for m in probe.messages(f"{SEG}/{kind}")}
        return [
            (raw[m.header.stamp.sec], m)
            for m in probe.messages(f"{SEG}/{kind}/compressed")
            if m.header.stamp.sec in raw
        ]

    assert probe.wait_for(lambda: all(same_stamp(kind) for kind in kinds), publish=publish)
    raw, compressed = same_stamp("labels")[-1]
    assert compressed.format == "mono8; png compressed mono8" and compressed.header.frame_id == raw.header.frame_id
    ids = cv2.imdecode(np.frombuffer(compressed.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(ids, np.frombuffer(raw.data, np.uint8).reshape(48, 64))  # lossless: the ids survive
    raw, compressed = same_stamp("confidence")[-1]
    assert compressed.format == "mono8; png compressed mono8"
    assert np.array_equal(
        cv2.imdecode(np.frombuffer(compressed.data, np.uint8), cv2.IMREAD_UNCHANGED),
        np.frombuffer(raw.data, np.uint8).reshape(48, 64),
    )
    for kind in ("color", "overlay"):
        raw, compressed = same_stamp(kind)[-1]
        assert compressed.format == "rgb8; jpeg compressed bgr8", kind
        shown = cv2.imdecode(np.frombuffer(compressed.data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        expected = np.frombuffer(raw.data, np.uint8).reshape(48, 64, 3)
        error = np.abs(shown.astype(float) - expected).mean() / 255
        assert error < 0.05, (kind, error)

    # Nobody on the compressed topics: none is made (no encoding work), the raw outputs go on.
    published = {}
    for kind, publisher in node.cameras[0].compressed_publishers.items():
        original = publisher.publish
        published[kind] = []
        publisher.publish = lambda msg, kind=kind, original=original: (published[kind].append(msg), original(msg))
    node_side = node.cameras[0]
    for subscription in list(probe.node.subscriptions):
        if subscription.topic_name.endswith("/compressed"):
            probe.node.destroy_subscription(subscription)
    assert probe.wait_for(lambda: not any(node_side.subscribed(kind, compressed=True) for kind in kinds), timeout=30)
    before = len(probe.messages(f"{SEG}/labels"))
    assert probe.wait_for(lambda: len(probe.messages(f"{SEG}/labels")) > before + 2, publish=publish)
    assert not any(published.values())


def test_a_compressed_subscriber_alone_gets_frames_segmented(start_node):
    """With skip_unsubscribed, a viewer of only labels/compressed counts as a subscriber of labels."""
    node, probe = start_node(outputs=["labels", "color"])
    probe.listen(CompressedImage, f"{SEG}/color/compressed")
    images = probe.publisher(Image, "/cam/front/image_raw")
    assert probe.wait_for(
        lambda: probe.messages(f"{SEG}/color/compressed"), publish=lambda: images.publish(bgr_msg(IMAGE))
    )
    assert probe.messages(f"{SEG}/color/compressed")[-1].format.startswith("rgb8; jpeg")
