"""cityscapes_seg_node as a separate process, started as a launch file starts it (--ros-args --params-file
plus -p overrides and remaps): outputs across processes, start-up errors, SIGINT."""

import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("cityscapes_seg_ros.msg", reason="messages not built (scripts/build_msgs.sh)")

from cityscapes_seg_ros.msg import ClassStatistics  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from support.ros_probe import Probe, bgr_msg, make_context  # noqa: E402

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]
PARAMS_FILE = ROOT / "config" / "cityscapes_seg.yaml"
NODE = [sys.executable, "-m", "cityscapes_seg_ros.node"]
CONSOLE_SCRIPT = [str(Path(sys.executable).parent / "cityscapes_seg_node")]


def start(command, *ros_args, params_file=PARAMS_FILE):
    # The tiny models do not need the compiled DCNv3 op (a first JIT build takes a minute).
    args = [*command, "--ros-args", "--params-file", str(params_file), "-p", "dcnv3_backend:=torch", *ros_args]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(process, second_sigint_after: float = None):
    """SIGINT, as Ctrl-C or ros2 launch sends it (a terminal's Ctrl-C under ros2 launch: two); returns (exit code,
    stderr)."""
    process.send_signal(signal.SIGINT)
    if second_sigint_after is not None:
        time.sleep(second_sigint_after)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err


@pytest.fixture
def probe():
    context = make_context()
    probe = Probe(context, "process_probe")
    yield probe
    probe.close()
    rclpy.try_shutdown(context=context)


def test_two_cameras_with_params_file_overrides_and_remaps(probe, tiny_model_files, tmp_path):
    config, checkpoint = tiny_model_files
    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["/**/cityscapes_seg_node"]["ros__parameters"]["confidence_encoding"] = "32FC1"
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    node = start(
        CONSOLE_SCRIPT,
        "-p",
        f"model:={config}",
        "-p",
        f"checkpoint:={checkpoint}",
        "-p",
        "inference_size:=[64, 32]",
        "-p",
        "image_topics:=[front/image_raw, rear/image_raw]",
        "-p",
        "outputs:=[labels, color, overlay, confidence, statistics, camera_info]",
        "-r",
        "__ns:=/car",
        "-r",
        "/car/rear/image_raw:=/car/rear/image_rect",
        params_file=params_file,
    )
    try:
        outputs = {
            "labels": Image,
            "color": Image,
            "overlay": Image,
            "confidence": Image,
            "statistics": ClassStatistics,
            "camera_info": CameraInfo,
        }
        for camera in ("front", "rear"):
            for kind, msg_type in outputs.items():
                probe.listen(msg_type, f"/car/{camera}/segmentation/{kind}")
        front = probe.publisher(Image, "/car/front/image_raw")
        rear = probe.publisher(Image, "/car/rear/image_rect")  # the remapped input of the rear camera
        info = probe.publisher(CameraInfo, "/car/front/camera_info")
        image = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)

        def publish():
            info.publish(CameraInfo(width=64, height=48))
            front.publish(bgr_msg(image, "front_link", 11, 5))
            rear.publish(bgr_msg(image[:40], "rear_link", 12, 6))

        expected = [f"/car/front/segmentation/{k}" for k in outputs]
        expected += [f"/car/rear/segmentation/{k}" for k in outputs if k != "camera_info"]  # no rear camera_info
        assert probe.wait_for(lambda: all(probe.messages(t) for t in expected), timeout=90, publish=publish), (
            [t for t in expected if not probe.messages(t)],
            node.poll(),
        )
        assert not probe.messages("/car/rear/segmentation/camera_info")
        for camera, frame_id, height in (("front", "front_link", 48), ("rear", "rear_link", 40)):
            labels = probe.messages(f"/car/{camera}/segmentation/labels")[-1]
            confidence = probe.messages(f"/car/{camera}/segmentation/confidence")[-1]
            stats = probe.messages(f"/car/{camera}/segmentation/statistics")[-1]
            assert (labels.encoding, labels.height, labels.width, labels.header.frame_id) == (
                "mono8",
                height,
                64,
                frame_id,
            )
            assert (confidence.encoding, confidence.height) == ("32FC1", height)  # from the params file
            assert (stats.height, stats.header.frame_id, stats.model) == (height, frame_id, "custom")
            counts = np.bincount(np.frombuffer(labels.data, np.uint8), minlength=256)
            assert [c.pixel_count for c in stats.classes] == counts[:19].tolist()
        info_out = probe.messages("/car/front/segmentation/camera_info")[-1]
        assert (info_out.header.frame_id, info_out.header.stamp.sec, info_out.width) == ("front_link", 11, 64)
    finally:
        code, err = stop(node, second_sigint_after=0.05)  # the terminal's and then launch's
    assert code == 0 and "Traceback" not in err, err


def test_a_2048x1024_frame_reaches_a_node_in_another_process_with_the_default_qos(probe, tmp_path, tiny_t_fixture):
    """Fast DDS loses best-effort images of this size between processes; the default is reliable."""
    config = copy.deepcopy(tiny_t_fixture["config"])
    config["decode_head"]["num_classes"] = 19  # keep the full-size softmax small
    config.get("auxiliary_head", {}).update(num_classes=19)
    config_file = tmp_path / "tiny19.yaml"
    config_file.write_text(yaml.safe_dump({"model": json.loads(json.dumps(config))}))
    node = start(
        NODE,
        "-p",
        f"model:={config_file}",
        "-p",
        "checkpoint:=none",
        "-p",
        "inference_size:=[64, 32]",
        "-p",
        "image_topics:=[/cam/front/image_raw]",
        "-p",
        "outputs:=[labels]",
    )
    try:
        probe.listen(Image, "/cam/front/segmentation/labels")
        images = probe.publisher(Image, "/cam/front/image_raw")
        frame = bgr_msg(np.zeros((1024, 2048, 3), np.uint8), "front", 3)
        assert probe.wait_for(
            lambda: probe.messages("/cam/front/segmentation/labels"),
            timeout=90,
            publish=lambda: images.publish(frame),
            every=2.0,
        ), node.poll()
        labels = probe.messages("/cam/front/segmentation/labels")[-1]
        assert (labels.width, labels.height, len(labels.data)) == (2048, 1024, 2048 * 1024)
    finally:
        code, err = stop(node)
    assert code == 0 and "Traceback" not in err, err


def test_sigusr1_prints_every_threads_stack_and_the_node_goes_on(probe, tiny_model_files):
    config, checkpoint = tiny_model_files
    node = start(NODE, "-p", f"model:={config}", "-p", f"checkpoint:={checkpoint}", "-p", "inference_size:=[64, 32]")
    try:
        deadline = time.monotonic() + 120
        while probe.node.count_publishers("/camera/segmentation/labels") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node.poll() is None and probe.node.count_publishers("/camera/segmentation/labels") == 1
        node.send_signal(signal.SIGUSR1)  # what someone does to a node that seems hung
        time.sleep(1.0)
        assert node.poll() is None, "SIGUSR1 ended the node"
    finally:
        code, err = stop(node)
    assert code == 0, err
    assert "Current thread" in err and "most recent call first" in err and "rclpy" in err, err


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["-p", "checkpoint:=/nonexistent/model.pth"], "checkpoint /nonexistent/model.pth does not exist"),
        (["-p", "overlay_alpha:=1.5", "-p", "mode:=tiles"], "overlay_alpha"),
        (["-p", "model:=no_such_model"], "unknown model 'no_such_model'"),
    ],
)
def test_start_up_errors_give_one_clear_line_and_a_non_zero_exit(overrides, words, tmp_path):
    result = subprocess.run(
        [*NODE, "--ros-args", "--params-file", str(PARAMS_FILE), *overrides],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "[FATAL]" in line]) == 1
    if "mode:=tiles" in overrides:
        assert "'tiles' is not one of whole, slide" in result.stderr


def test_a_checkpoint_of_another_model_is_refused_at_start_up(tmp_path, tiny_model_files):
    import torch

    wrong = tmp_path / "wrong.pth"
    torch.save({"meta": {}, "state_dict": {"backbone.foo": torch.zeros(1)}}, wrong)
    config, _ = tiny_model_files
    result = subprocess.run(
        [*NODE, "--ros-args", "-p", f"model:={config}", "-p", f"checkpoint:={wrong}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "does not fit the model" in result.stderr and "Traceback" not in result.stderr
