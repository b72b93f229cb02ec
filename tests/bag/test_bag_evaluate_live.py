"""``cityscapes-seg-bag evaluate`` live: a node process fed by the replay, its outputs matched by stamp.

The node here is ``support.bag_standin_node`` (the real node's topics and parameters, the same Predictor), so these
tests check the evaluator's ROS side: masks and scores equal the offline mode's, latency is measured per
frame, dropped frames are counted with the rest scored, outputs are recorded, a dying node is reported.
The last test runs the real ``cityscapes_seg_ros.node`` when it is installed.
"""

import contextlib
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import TESTS
from support.bag_support import (
    TINY_SCALE,
    make_bag,
    make_split,
    offline_args,
    restamp_bag,
    tiny_model_args,
    tiny_model_files,
)

pytest.importorskip("rclpy", reason="needs the ROS 2 wheels (ros-rclpy, ros-rmw-fastrtps-cpp)")

from cityscapes_seg_ros.bag.bagio import iter_images, summarize  # noqa: E402
from cityscapes_seg_ros.cli.bag_main import main as bag_main  # noqa: E402

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

STANDIN = "support.bag_standin_node"


@pytest.fixture(autouse=True)
def standin_importable(monkeypatch):
    """The node subprocesses find support.bag_standin_node on their path."""
    paths = [str(TESTS)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    monkeypatch.setenv("PYTHONPATH", ":".join(paths))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, tiny_t_fixture):
    return tiny_model_files(tiny_t_fixture, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    make_split(root)
    return make_bag(root, root / "bag", "--rate", "2")


def live_args(bag, out, model_files, *extra):
    """`cityscapes-seg-bag evaluate` of ``bag`` through a started node (the stand-in module) with the tiny model."""
    timeouts = ["--ready-timeout", "120", "--drain-timeout", "20"]
    node = ["--node-module", STANDIN]
    return ["evaluate", str(bag), *node, *tiny_model_args(model_files), "--out", str(out), *timeouts, *extra]


def read_report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_live_masks_and_scores_equal_the_offline_mode_and_outputs_are_recorded(bag, tmp_path, model_files):
    config, checkpoint = model_files
    assert (
        bag_main(
            live_args(
                bag,
                tmp_path / "live",
                model_files,
                "--save-predictions",
                str(tmp_path / "live_masks"),
                "--record",
                str(tmp_path / "recorded"),
            )
        )
        == 0
    )
    offline_command = offline_args(
        bag, tmp_path / "offline", model_files, "--save-predictions", str(tmp_path / "offline_masks")
    )
    assert bag_main(offline_command) == 0

    live, offline = read_report(tmp_path / "live"), read_report(tmp_path / "offline")
    stamps = [stamp for stamp, _ in iter_images(bag, "/cam/front/image_raw")]
    for stamp in stamps:  # identical masks, frame by frame
        live_mask = cv2.imread(str(tmp_path / "live_masks" / f"{stamp}.png"), cv2.IMREAD_UNCHANGED)
        offline_mask = cv2.imread(str(tmp_path / "offline_masks" / f"{stamp}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(live_mask, offline_mask)
    assert live["scores"] == offline["scores"] and live["scores"]["miou"] > 0
    assert live["frames"]["scored"] == 4 and live["frames"]["dropped"] == 0
    assert live["latency_kind"] == "end_to_end" and live["latency_ms"]["count"] == 4
    assert 0 < live["latency_ms"]["p50"] <= live["latency_ms"]["p95"] <= live["latency_ms"]["max"]
    assert live["throughput_fps"] > 0
    assert [f["stamp_ns"] for f in live["per_frame"]] == stamps
    recorded = summarize(tmp_path / "recorded")
    assert recorded.topics["/cam/front/segmentation/labels"].count == 4
    assert recorded.topics["/cam/front/segmentation/color"].count == 4
    assert recorded.notes == []  # its chunks carry checksums
    assert (tmp_path / "live" / "latency.png").is_file() and (tmp_path / "live" / "node.log").is_file()


@pytest.mark.parametrize("pacing", [[], ["--lockstep"]], ids=["rate", "lockstep"])
def test_running_node_that_drops_frames_gives_partial_results(bag, tmp_path, model_files, pacing):
    """In lock step too: a frame the node loses counts as dropped, and the next one goes out."""
    config, checkpoint = model_files
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            STANDIN,
            "--ros-args",
            "-p",
            "image_topics:=['/cam/front/image_raw']",
            "-p",
            f"model:={config}",
            "-p",
            f"checkpoint:={checkpoint}",
            "-p",
            "device:=cpu",
            "-p",
            f"inference_size:=[{TINY_SCALE.replace('x', ', ')}]",
            "-p",
            "skip_every:=2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        args = live_args(bag, tmp_path / "live", model_files, "--use-running-node", "--drain-timeout", "5", *pacing)
        code = bag_main(args)
    finally:
        node.terminate()
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:  # slow to stop on a loaded machine: it must not serve the next test
            node.kill()
            node.wait()
    assert code == 1  # fewer frames scored than the bag holds
    report = read_report(tmp_path / "live")
    assert report["frames"]["dropped"] == 2 and report["frames"]["scored"] == 2
    assert len(report["dropped_stamps"]) == 2 and report["scores"] is not None
    assert report["latency_ms"]["count"] == 2
    assert any("2 of 4 frames got no prediction" in p for p in report["problems"])


def test_a_node_that_dies_is_reported_with_its_log(bag, tmp_path, model_files, capsys):
    args = live_args(bag, tmp_path / "live", model_files)
    args[args.index("--checkpoint") + 1] = str(tmp_path / "missing.pth")
    assert bag_main(args) == 2
    err = capsys.readouterr().err
    assert "node exited" in err and "missing.pth" in err


def node_pid(text: str) -> int:
    match = re.search(r"started the node \(pid (\d+)\)", text)
    assert match, text
    return int(match.group(1))


def gone(pid: int, timeout: float = 20.0) -> bool:
    """True once no process ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


def test_an_error_after_the_node_started_stops_it(bag, tmp_path, model_files, capsys, caplog):
    """Frames sharing a stamp are refused at the first repeat, mid-replay: the node is stopped, no report."""
    restamped = restamp_bag(bag, tmp_path / "restamped")
    with caplog.at_level(logging.INFO, logger="cityscapes_seg_ros"):
        assert bag_main(live_args(restamped, tmp_path / "live", model_files)) == 2
    assert "header stamp" in capsys.readouterr().err
    assert gone(node_pid(caplog.text))
    assert not (tmp_path / "live" / "report.json").exists()


def test_topics_are_checked_before_the_node_starts(bag, tmp_path, model_files, capsys):
    assert bag_main(live_args(bag, tmp_path / "live", model_files, "--label-topic", "/cam/front/camera_info")) == 2
    assert "ground-truth label topic" in capsys.readouterr().err
    assert not (tmp_path / "live" / "node.log").exists()


def stacks(evaluator: subprocess.Popen, node_pid: int, node_log: Path) -> str:
    """The evaluator's threads (its stderr) and the node's (its log), as SIGUSR1 has them print."""
    for pid in (evaluator.pid, node_pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
    time.sleep(2.0)
    evaluator.kill()
    _, err = evaluator.communicate()
    log = node_log.read_text(errors="replace")[-6000:] if node_log.exists() else "(none)"
    return f"{err}\n--- {node_log.name} ---\n{log}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_evaluation_leaves_no_node_behind(bag, tmp_path, model_files, signum):
    script = Path(sys.executable).parent / "cityscapes-seg-bag"
    evaluator = subprocess.Popen(
        [str(script), *live_args(bag, tmp_path / "live", model_files)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # As a terminal starts a command: a test run started in the background (`&` in a script) ignores SIGINT,
        # and every program it starts would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        for line in evaluator.stderr:  # until the evaluator says it started the node
            lines.append(line)
            if "started the node" in line:
                break
        pid = node_pid("".join(lines))
        evaluator.send_signal(signum)  # to the evaluator only, not to the node (a terminal's Ctrl-C reaches both)
        try:
            _, rest = evaluator.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            rest = f"still running 60 s after the signal; the stacks of both processes (SIGUSR1):\n{stacks(evaluator, pid, tmp_path / 'live' / 'node.log')}"
    finally:
        if evaluator.poll() is None:
            evaluator.kill()
    assert evaluator.returncode == 128 + signum, "".join(lines) + rest
    assert gone(pid)


@pytest.mark.skipif(
    importlib.util.find_spec("cityscapes_seg_ros.node") is None,
    reason="cityscapes_seg_ros.node (issue 3) is not in this checkout",
)
def test_the_real_node_gives_the_offline_masks(bag, tmp_path, model_files):
    config, checkpoint = model_files
    # Lock step: the real node drops a frame that arrives while it is busy (by design); here each frame goes out
    # once the previous one's labels are back, so every frame is scored however slow the machine is.
    args = live_args(
        bag, tmp_path / "live", model_files, "--save-predictions", str(tmp_path / "live_masks"), "--lockstep"
    )
    args.remove("--node-module"), args.remove(STANDIN)  # the same arguments start the real node
    assert bag_main(args) == 0
    live = read_report(tmp_path / "live")
    assert live["frames"]["scored"] == 4 and live["frames"]["dropped"] == 0
    assert live["replay"] == {"rate": None, "lockstep": True, "published": 8}  # 4 camera frames and their camera_info
    offline_command = offline_args(
        bag, tmp_path / "offline", model_files, "--save-predictions", str(tmp_path / "offline_masks")
    )
    assert bag_main(offline_command) == 0
    for path in sorted((tmp_path / "offline_masks").glob("*.png")):
        np.testing.assert_array_equal(
            cv2.imread(str(tmp_path / "live_masks" / path.name), cv2.IMREAD_UNCHANGED),
            cv2.imread(str(path), cv2.IMREAD_UNCHANGED),
        )
    assert live["scores"] == read_report(tmp_path / "offline")["scores"]
