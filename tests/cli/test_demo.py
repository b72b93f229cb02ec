"""``cityscapes-seg demo``: the real node in a child process, fed the bundled frames, the results on disk."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("cityscapes_seg_ros.msg", reason="messages not built (scripts/build_msgs.sh)")

from support.bag_support import tiny_model_files  # noqa: E402

from cityscapes_seg_ros.cli import demo as demo_cli  # noqa: E402
from cityscapes_seg_ros.cli.demo_sheet import (  # noqa: E402
    TILE_WIDTH,
    TITLE_HEIGHT,
    legend_band,
    legend_entries,
    sheet_size,
    tile_origin,
)
from cityscapes_seg_ros.cli.main import main  # noqa: E402
from cityscapes_seg_ros.labels import TRAIN_ID_PALETTE  # noqa: E402
from cityscapes_seg_ros.segmenter.hub_cache import download_command  # noqa: E402
from cityscapes_seg_ros.segmenter.options import ModelOptions  # noqa: E402

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

DEMO = [sys.executable, "-m", "cityscapes_seg_ros.cli.main", "demo"]
STARTED = re.compile(r"started the node \(pid (\d+)\)")
SMALL = ["--img-scale", "128x64", "--dcnv3-backend", "torch", "--device", "cpu", "--timeout", "240"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_t_fixture):
    return tiny_model_files(tiny_t_fixture, tmp_path_factory.mktemp("demo_model"))


def shown_legend(out, frame_shapes) -> np.ndarray:
    """The legend band the sheet of ``out`` must end with: the classes of its class_shares.csv."""
    with open(out / "class_shares.csv") as f:
        rows = [(r["class"], int(r["pixels"]), float(r["percent"])) for r in csv.DictReader(f)]
    return legend_band(sheet_size(frame_shapes)[0], legend_entries(rows))


def node_pids(caplog) -> list:
    return [int(m.group(1)) for r in caplog.records if (m := STARTED.search(r.getMessage()))]


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_segments_the_bundled_frames_through_the_node(tmp_path, tiny_model, caplog, capsys):
    config, checkpoint = tiny_model
    out = tmp_path / "out"
    caplog.set_level("INFO", logger="cityscapes_seg_ros")
    code = main(["demo", "--model", str(config), "--checkpoint", str(checkpoint), "--out", str(out), *SMALL])
    assert code == 0, capsys.readouterr().err
    frames = sorted(demo_cli.DEMO_FRAMES.glob("*.png"))
    assert len(frames) == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == [p.stem for p in frames] and summary["timing"]["frames"] == 6
    assert summary["timing"]["fps"] > 0 and summary["timing"]["latency_p50_ms"] > 0
    assert sorted(p.name for p in (out / "overlay").iterdir()) == [p.name for p in frames]

    # The table: every pixel of the six 512x256 frames counted once, the shares summing to 100 %.
    with open(out / "class_shares.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20  # 19 classes and ignore
    assert sum(int(r["pixels"]) for r in rows) == 6 * 512 * 256
    assert abs(sum(float(r["percent"]) for r in rows) - 100.0) < 1e-3
    printed = capsys.readouterr().out
    assert "100.00%" in printed and "frames/s" in printed and "RANDOM WEIGHTS" not in printed

    # The sheet: a title band, six rows of three 384x192 tiles (each row shows its own frame), the legend.
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    shapes = [(256, 512)] * 6
    legend = shown_legend(out, shapes)
    rows_end = TITLE_HEIGHT + 6 * (192 + 4) + 4
    assert sheet.shape == (rows_end + legend.shape[0], 3 * 384 + 4 * 4, 3)
    assert np.array_equal(sheet[rows_end:], legend)
    for row, path in enumerate(frames):
        x, y = tile_origin(shapes, row, 0)
        expected = cv2.resize(cv2.imread(str(path)), (TILE_WIDTH, 192), interpolation=cv2.INTER_AREA)
        shown = sheet[y + 40 : y + 192, x : x + TILE_WIDTH]  # below the frame's name
        assert np.abs(shown.astype(int) - expected[40:].astype(int)).max() <= 1, row
        x, y = tile_origin(shapes, row, 1)
        colours = np.unique(sheet[y + 24 : y + 192, x : x + TILE_WIDTH].reshape(-1, 3), axis=0)
        palette = {tuple(int(v) for v in c[::-1]) for c in TRAIN_ID_PALETTE}  # RGB palette, BGR sheet
        assert {tuple(int(v) for v in c) for c in colours} <= palette, row
        overlay = cv2.imread(str(out / "overlay" / path.name))
        x, y = tile_origin(shapes, row, 2)
        expected = cv2.resize(overlay, (TILE_WIDTH, 192), interpolation=cv2.INTER_AREA)
        assert np.abs(sheet[y : y + 192, x : x + TILE_WIDTH].astype(int) - expected.astype(int)).max() <= 1
    assert not _red_text(sheet)

    pids = node_pids(caplog)
    assert len(pids) == 1 and not is_running(pids[0])


def _red_text(sheet) -> bool:
    """Whether the title band holds the red "RANDOM WEIGHTS"."""
    band = sheet[:TITLE_HEIGHT].astype(int)
    return bool(((band[..., 2] > 200) & (band[..., 1] < 90) & (band[..., 0] < 90)).sum() > 50)


def test_random_weights_and_own_images_are_said_on_the_sheet(tmp_path, tiny_model, capsys):
    config, _ = tiny_model
    images = tmp_path / "mine"
    images.mkdir()
    rng = np.random.default_rng(3)
    for name, size in (("a", (60, 100)), ("b", (80, 80))):
        cv2.imwrite(str(images / f"{name}.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    out = tmp_path / "out"
    code = main(
        ["demo", "--model", str(config), "--checkpoint", "none", "--images", str(images), "--out", str(out), *SMALL]
    )
    assert code == 0, capsys.readouterr().err
    assert "RANDOM WEIGHTS" in capsys.readouterr().out
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    legend = shown_legend(out, [(60, 100), (80, 80)])
    assert sheet.shape == (TITLE_HEIGHT + (230 + 4) + (384 + 4) + 4 + legend.shape[0], 3 * 384 + 16, 3)
    assert _red_text(sheet)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == ["a", "b"] and "RANDOM WEIGHTS" in summary["model"]["checkpoint"]
    assert summary["random_weights"] is True and summary["random_weights_reason"] == "--checkpoint none"


def test_without_the_hub_the_demo_runs_with_random_weights_and_says_why(tmp_path, tiny_model, caplog, capsys):
    """Offline, weights not cached: one warning line, the whole node with random weights, marked, exit 0."""
    config, _ = tiny_model
    out = tmp_path / "out"
    caplog.set_level("INFO", logger="cityscapes_seg_ros")
    hub = ["--checkpoint", "hf://OpenGVLab/InternImage/tiny.pth", "--hub-offline", "--cache-dir", str(tmp_path / "c")]
    code = main(["demo", "--model", str(config), *hub, "--out", str(out), "--frames", "2", *SMALL])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    warnings = [
        r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "RANDOM WEIGHTS" in r.getMessage()
    ]
    assert len(warnings) == 1 and "offline" in warnings[0] and "--require-weights" in warnings[0], warnings
    assert "\n" not in warnings[0]
    assert "RANDOM WEIGHTS (the released weights could not be had)" in printed.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] is True and "offline" in summary["random_weights_reason"]
    assert "RANDOM WEIGHTS" in summary["model"]["checkpoint"] and len(summary["frames"]) == 2
    assert _red_text(cv2.imread(str(out / "contact_sheet.png")))


def test_on_a_cpu_the_demo_picks_a_size_and_frame_count_and_says_so(caplog):
    import argparse

    caplog.set_level("INFO", logger="cityscapes_seg_ros")
    frames = [(f"f{i}", np.zeros((256, 512, 3), np.uint8)) for i in range(demo_cli.CPU_FRAMES + 3)]
    args = argparse.Namespace(frames=None, camera=None)
    options, given, kept = demo_cli.fit_to_device(ModelOptions(device="cpu"), ["device"], frames, args)
    assert options.img_scale == demo_cli.CPU_IMG_SCALE and "img_scale" in given  # handed to the node
    assert [name for name, _ in kept] == [name for name, _ in frames[: demo_cli.CPU_FRAMES]]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "512x256" in said and f"first {demo_cli.CPU_FRAMES} of {len(frames)} frames" in said

    # What the user gives stands.
    args = argparse.Namespace(frames=8, camera=None)
    mine = ModelOptions(device="cpu", img_scale=(1024, 512))
    options, given, kept = demo_cli.fit_to_device(mine, ["device", "img_scale"], frames, args)
    assert options.img_scale == (1024, 512) and len(kept) == 8


def test_offline_without_cached_weights_and_require_weights_is_one_line_before_any_node(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [*DEMO, "--hub-offline", "--cache-dir", str(tmp_path / "empty_cache"), "--out", str(out), "--require-weights"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "upernet_internimage_t_512x1024_160k_cityscapes" in line and "offline" in line
    assert download_command("OpenGVLab/InternImage", "upernet_internimage_t_512x1024_160k_cityscapes.pth") in line
    assert "--checkpoint FILE" in line and "--checkpoint none" in line
    assert not (out / "node.log").exists()


def test_an_unreachable_hub_is_one_line_too(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(demo_cli, "hub_unreachable", lambda: "huggingface.co:443: Name or service not known")
    code = main(["demo", "--cache-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--require-weights"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the hub is unreachable: huggingface.co:443" in err[0], err


def test_cached_hub_weights_are_used_without_network(tmp_path, monkeypatch):
    """The node gets the cached file (so it needs no network either); nothing is probed or downloaded."""
    name = "upernet_internimage_t_512x1024_160k_cityscapes"
    snapshot = tmp_path / "cache" / "models--OpenGVLab--InternImage" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / f"{name}.pth").write_bytes(b"PK")
    (tmp_path / "cache" / "models--OpenGVLab--InternImage" / "refs").mkdir()
    (tmp_path / "cache" / "models--OpenGVLab--InternImage" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(demo_cli, "hub_unreachable", lambda: pytest.fail("probed the network"))
    options = demo_cli.ensure_weights(ModelOptions(model=name, cache_dir=str(tmp_path / "cache"), device="cpu"))
    assert options.checkpoint == str(snapshot / f"{name}.pth")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_no_node_outlives_an_interrupted_demo(tmp_path, tiny_model, signum):
    config, checkpoint = tiny_model
    demo = subprocess.Popen(
        [*DEMO, "--model", str(config), "--checkpoint", str(checkpoint), "--out", str(tmp_path), *SMALL],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, found = [], threading.Event()

    def read() -> None:
        for line in demo.stderr:
            lines.append(line)
            if STARTED.search(line):
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert found.wait(120), "".join(lines)
        pid = int(STARTED.search("".join(lines)).group(1))
        time.sleep(1.0)  # the node is loading its model now
        demo.send_signal(signum)
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    reader.join(timeout=10)
    said = "terminated" if signum == signal.SIGTERM else "interrupted"
    assert code == 128 + signum and said in "".join(lines), "".join(lines)
    assert "Traceback" not in "".join(lines)
    assert not is_running(pid)


def test_a_live_camera_is_segmented_until_the_frame_count(tmp_path, tiny_model):
    """--camera: the demo listens to a camera it does not publish, and stops after --frames."""
    from sensor_msgs.msg import Image
    from support.ros_probe import Probe, bgr_msg, make_context

    config, checkpoint = tiny_model
    context = make_context()
    probe = Probe(context, "demo_camera")
    camera = probe.publisher(Image, "/demo_test/cam/image_raw")
    out = tmp_path / "out"
    demo = subprocess.Popen(
        [
            *DEMO,
            "--model",
            str(config),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--camera",
            "/demo_test/cam/image_raw",
            "--frames",
            "3",
            *SMALL,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        image = np.random.default_rng(2).integers(0, 256, (48, 96, 3), dtype=np.uint8)
        stamp = [0]

        def publish():
            stamp[0] += 1
            camera.publish(bgr_msg(image, "cam", stamp[0]))

        assert probe.wait_for(lambda: demo.poll() is not None, timeout=180, publish=publish, every=0.3)
        out_text, err = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
        probe.close()
        rclpy.try_shutdown(context=context)
    assert demo.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == ["frame_000", "frame_001", "frame_002"] and "live camera" in summary["timing_mode"]
    legend = shown_legend(out, [(48, 96)] * 3)
    assert cv2.imread(str(out / "contact_sheet.png")).shape[0] == TITLE_HEIGHT + 3 * (192 + 4) + 4 + legend.shape[0]
    assert sum(int(r["pixels"]) for r in csv.DictReader(open(out / "class_shares.csv"))) == 3 * 48 * 96
    assert "live camera" in out_text


def test_a_node_that_cannot_start_is_one_line_with_its_reason(tmp_path, tiny_model):
    import torch

    config, _ = tiny_model
    wrong = tmp_path / "wrong.pth"
    torch.save({"meta": {}, "state_dict": {"backbone.foo": torch.zeros(1)}}, wrong)
    result = subprocess.run(
        [*DEMO, "--model", str(config), "--checkpoint", str(wrong), "--out", str(tmp_path / "o"), *SMALL],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("INFO ")]
    assert len(errors) == 1 and "exited with status 2" in errors[0] and "does not fit the model" in errors[0], errors
    pid = int(STARTED.search(result.stderr).group(1))
    assert not is_running(pid)
