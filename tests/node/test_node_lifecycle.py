"""The lifecycle variant of cityscapes_seg_node with real rclpy and DDS, driven through its own transitions:
nothing is subscribed before activate, outputs flow while active and stop on deactivate, cleanup frees the
model, shutdown works from every state; and ``--lifecycle`` as a process driven by lifecycle_msgs services."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("cityscapes_seg_ros.msg", reason="messages not built (scripts/build_msgs.sh)")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from support.ros_probe import Probe, bgr_msg, make_context  # noqa: E402

from cityscapes_seg_ros import build_segmentor  # noqa: E402
from cityscapes_seg_ros.node.lifecycle import SegmentationLifecycleNode  # noqa: E402
from cityscapes_seg_ros.node.pipeline import DevicePredictor  # noqa: E402

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]
INPUT = "/cam/front/image_raw"
LABELS = "/cam/front/segmentation/labels"
IMAGE = np.random.default_rng(8).integers(0, 256, (48, 64, 3), dtype=np.uint8)
SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture(scope="module")
def tiny_model(tiny_t_fixture):
    return build_segmentor(tiny_t_fixture["config"], None, "cpu").eval()


@pytest.fixture
def lifecycle_node(tiny_model):
    """(node, probe, loads): a SegmentationLifecycleNode spinning in a background thread; ``loads`` lists the
    predictors its configure built."""
    context = make_context()
    loads = []

    def load(settings):
        loads.append(DevicePredictor(tiny_model, img_scale=tuple(settings.inference_size)))
        return loads[-1]

    overrides = [
        Parameter("image_topics", value=[INPUT]),
        Parameter("inference_size", value=[64, 32]),
        Parameter("outputs", value=["labels"]),
        Parameter("dcnv3_backend", value="torch"),
    ]
    node = SegmentationLifecycleNode(load=load, context=context, parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    probe = Probe(context, "lifecycle_probe")
    yield node, probe, loads
    probe.close()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def frames_meanwhile(probe, seconds):
    """Publish frames for ``seconds``; returns how many labels arrived meanwhile."""
    images = probe.publisher(Image, INPUT)
    before = len(probe.messages(LABELS))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        images.publish(bgr_msg(IMAGE))
        time.sleep(0.1)
    return len(probe.messages(LABELS)) - before


def test_transitions_configure_activate_deactivate_cleanup(lifecycle_node):
    node, probe, loads = lifecycle_node
    probe.listen(Image, LABELS)
    assert node.predictor is None and node.cameras == [] and not loads  # unconfigured: no model loaded

    assert node.trigger_configure() == SUCCESS
    assert node.predictor is loads[0] and len(node.cameras) == 1
    assert frames_meanwhile(probe, 1.5) == 0  # configured, inactive: nothing subscribed, nothing segmented
    assert probe.node.count_subscribers(INPUT) == 0 and node.cameras[0].counters.received == 0

    assert node.trigger_activate() == SUCCESS
    images = probe.publisher(Image, INPUT)
    assert probe.wait_for(lambda: probe.messages(LABELS), publish=lambda: images.publish(bgr_msg(IMAGE)))
    labels = probe.messages(LABELS)[-1]
    assert (labels.height, labels.width) == IMAGE.shape[:2]

    assert node.trigger_deactivate() == SUCCESS
    assert probe.wait_for(lambda: probe.node.count_subscribers(INPUT) == 0, timeout=10)
    assert frames_meanwhile(probe, 1.5) == 0  # inactive again: no outputs
    worker_threads = [t for t in threading.enumerate() if t.name == "segmentation-worker"]
    assert not worker_threads

    assert node.trigger_cleanup() == SUCCESS
    assert node.predictor is None and node.processor is None and node.cameras == []

    # A second cycle loads the model again and serves again.
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
    assert len(loads) == 2 and node.predictor is loads[1]
    before = len(probe.messages(LABELS))
    assert probe.wait_for(lambda: len(probe.messages(LABELS)) > before, publish=lambda: images.publish(bgr_msg(IMAGE)))
    assert node.trigger_shutdown() == SUCCESS  # from active
    assert node.predictor is None and node.cameras == []
    assert probe.wait_for(lambda: probe.node.count_subscribers(INPUT) == 0, timeout=10)


@pytest.mark.parametrize("reached", ["unconfigured", "inactive"])
def test_shutdown_from_unconfigured_and_inactive(lifecycle_node, reached):
    node, probe, loads = lifecycle_node
    if reached == "inactive":
        assert node.trigger_configure() == SUCCESS
    assert node.trigger_shutdown() == SUCCESS
    assert node.predictor is None and node.cameras == []
    assert len(loads) == (reached == "inactive")


def test_a_configure_that_fails_says_why_and_leaves_the_node_unconfigured(tiny_model_files, capfd):
    config, _ = tiny_model_files
    context = make_context()
    overrides = [
        Parameter("model", value=str(config)),
        Parameter("checkpoint", value="/nonexistent/model.pth"),
        Parameter("dcnv3_backend", value="torch"),
    ]
    node = SegmentationLifecycleNode(context=context, parameter_overrides=overrides)  # the parameters' model
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.predictor is None and node.cameras == []
        assert "configure failed: checkpoint /nonexistent/model.pth does not exist" in capfd.readouterr().err
        assert node.trigger_shutdown() == SUCCESS  # still unconfigured: shutdown from there
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_the_lifecycle_entry_point_serves_once_configured_and_activated(tiny_model_files):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    config, checkpoint = tiny_model_files
    name = f"lifecycle_test_{os.getpid()}"  # names of its own: other processes may share the DDS domain
    image_topic, labels_topic = f"/{name}/image_raw", f"/{name}/segmentation/labels"
    command = [
        sys.executable,
        "-m",
        "cityscapes_seg_ros.node",
        "--lifecycle",
        "--ros-args",
        "--params-file",
        str(ROOT / "config" / "cityscapes_seg.yaml"),
        "-p",
        f"model:={config}",
        "-p",
        f"checkpoint:={checkpoint}",
        "-p",
        "dcnv3_backend:=torch",
        "-p",
        "inference_size:=[64, 32]",
        "-p",
        f"image_topics:=[{image_topic}]",
        "-p",
        "outputs:=[labels]",
        "-r",
        f"__node:={name}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    context = make_context()
    probe = Probe(context, "lifecycle_process_probe")
    try:
        probe.listen(Image, labels_topic)
        images = probe.publisher(Image, image_topic)
        get_state = probe.node.create_client(GetState, f"/{name}/get_state")
        change_state = probe.node.create_client(ChangeState, f"/{name}/change_state")
        assert get_state.wait_for_service(timeout_sec=90), process.poll()

        def call(client, request):
            # A request sent right after discovery can lose its response (the reply path is not matched yet):
            # ask again. Each request here is idempotent or refused once done (the check is the state after).
            for _ in range(12):
                future = client.call_async(request)
                if probe.wait_for(future.done, timeout=5):
                    return future.result()
            raise AssertionError(f"no response from {client.srv_name}: {process.poll()}")

        def state():
            return call(get_state, GetState.Request()).current_state.label

        def publish():
            images.publish(bgr_msg(IMAGE))

        assert state() == "unconfigured"
        assert not probe.wait_for(lambda: probe.messages(labels_topic), timeout=1.0, publish=publish)
        for transition, reached in (
            (Transition.TRANSITION_CONFIGURE, "inactive"),
            (Transition.TRANSITION_ACTIVATE, "active"),
        ):
            call(change_state, ChangeState.Request(transition=Transition(id=transition)))
            assert state() == reached
        assert probe.wait_for(lambda: probe.messages(labels_topic), timeout=60, publish=publish), "no labels"
    finally:
        probe.close()
        rclpy.try_shutdown(context=context)
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    assert process.returncode == 0 and "Traceback" not in err, err


def test_an_unknown_argument_is_one_clear_line():
    done = subprocess.run(
        [sys.executable, "-m", "cityscapes_seg_ros.node", "--lifecycel"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "unknown argument(s) --lifecycel" in done.stderr
    assert "Traceback" not in done.stderr
