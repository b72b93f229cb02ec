"""``cityscapes-seg models`` and ``cityscapes-seg predict`` as a user runs them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from support.hostile_images import EXTREME_SHAPES, write_hostile_images
from support.released_keys import PUBLISHED_PARAMS_M

from cityscapes_seg_ros.cli.common import run_command
from cityscapes_seg_ros.cli.main import main
from cityscapes_seg_ros.harness.interrupts import terminate_as_interrupt
from cityscapes_seg_ros.labels import TRAIN_ID_PALETTE, train_ids_to_label_ids

VENV_BIN = Path(sys.executable).parent


def test_models_lists_the_nine_with_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, params in PUBLISHED_PARAMS_M.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{params:.2f}M" in line
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(PUBLISHED_PARAMS_M)


def test_console_script_is_installed():
    result = subprocess.run([str(VENV_BIN / "cityscapes-seg"), "models"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "segformer_internimage_xl_512x1024_160k_mapillary2cityscapes" in result.stdout


@pytest.mark.parametrize(
    "command", [["models"], ["models", "--json"], ["doctor", "--json", "--no-benchmark"]], ids=" ".join
)
def test_output_into_a_reader_that_stopped_ends_quietly(command):
    """``cityscapes-seg models | head``: the reader is gone before the first line (as ``head`` is after its
    lines), so every write meets a closed pipe."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cityscapes_seg_ros.cli.main", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=300) == 128 + signal.SIGPIPE and "Traceback" not in err and "Broken" not in err, err


def test_sigterm_exits_143_and_ctrl_c_130_after_the_same_clean_up(capsys):
    cleaned = []

    def wait_for(signum):
        def command() -> int:
            with terminate_as_interrupt():
                try:
                    os.kill(os.getpid(), signum)
                    time.sleep(30)
                finally:
                    cleaned.append(signum)
            return 0

        return command

    assert run_command("cityscapes-seg", wait_for(signal.SIGTERM)) == 143
    assert capsys.readouterr().err.strip() == "cityscapes-seg: terminated"
    assert run_command("cityscapes-seg", wait_for(signal.SIGINT)) == 130
    assert capsys.readouterr().err.strip() == "cityscapes-seg: interrupted"
    assert cleaned == [signal.SIGTERM, signal.SIGINT]


def test_predict_writes_four_pngs_and_skips_bad_inputs(tmp_path, tiny_model_files, caplog):
    config, checkpoint = tiny_model_files
    images = tmp_path / "images"
    (images / "city").mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / "city" / "a_leftImg8bit.png"), rng.integers(0, 256, (40, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "b.jpg"), rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "grey.png"), rng.integers(0, 256, (20, 20), dtype=np.uint8))
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (images / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"

    code = main(
        [
            "predict",
            "--config",
            str(config),
            "--checkpoint",
            str(checkpoint),
            str(images),
            str(tmp_path / "missing.png"),
            "--out",
            str(out),
            "--img-scale",
            "128x64",
            "--device",
            "cpu",
        ]
    )

    assert code == 1  # some inputs were bad, the rest is done
    messages = caplog.text
    assert "corrupt.png" in messages and "empty.jpg" in messages and "missing.png" in messages
    for rel, (h, w) in {"city/a_leftImg8bit.png": (40, 64), "b.png": (30, 50), "grey.png": (20, 20)}.items():
        train_ids = cv2.imread(str(out / "trainIds" / rel), cv2.IMREAD_UNCHANGED)
        label_ids = cv2.imread(str(out / "labelIds" / rel), cv2.IMREAD_UNCHANGED)
        color = cv2.imread(str(out / "color" / rel))[:, :, ::-1]
        overlay = cv2.imread(str(out / "overlay" / rel))
        assert train_ids.shape == (h, w) and overlay.shape == (h, w, 3)
        assert set(np.unique(train_ids)) <= set(range(19)) | {255}
        np.testing.assert_array_equal(label_ids, train_ids_to_label_ids(train_ids))
        np.testing.assert_array_equal(color, TRAIN_ID_PALETTE[train_ids])
    assert not (out / "trainIds" / "corrupt.png").exists()
    assert not list(out.rglob("*.tmp"))


def test_predict_goes_on_past_hostile_images(tmp_path, tiny_model_files, caplog, capsys):
    """Issue 11: extreme aspect ratios and a single pixel are segmented, a header claiming 65535x65535 is
    refused by name, the normal image after them is done, and the exit status says something was skipped."""
    config, checkpoint = tiny_model_files
    images = tmp_path / "images"
    write_hostile_images(images)
    cv2.imwrite(str(images / "zz_normal.png"), np.random.default_rng(2).integers(0, 256, (40, 64, 3), dtype=np.uint8))
    out = tmp_path / "out"

    code = main(
        [
            "predict",
            "--config",
            str(config),
            "--checkpoint",
            str(checkpoint),
            str(images),
            "--out",
            str(out),
            "--img-scale",
            "128x64",
            "--device",
            "cpu",
        ]
    )

    assert code == 1
    skipped = [line for line in caplog.text.splitlines() if "skipped" in line and ".png" in line]
    assert len(skipped) == 1 and "huge.png: image too large: the header claims more than" in skipped[0]
    assert "done: 4 written" in caplog.text
    assert "Traceback" not in capsys.readouterr().err
    for name, shape in {**EXTREME_SHAPES, "zz_normal.png": (40, 64)}.items():
        train_ids = cv2.imread(str(out / "trainIds" / name), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(out / "overlay" / name), cv2.IMREAD_UNCHANGED)
        assert train_ids.shape == shape and overlay.shape == (*shape, 3)
        assert set(np.unique(train_ids)) <= set(range(19)) | {255}
    assert not list(out.rglob("huge.png"))


def test_predict_matches_the_python_api(tmp_path, tiny_model_files, tiny_t_fixture):
    from cityscapes_seg_ros import Predictor, build_segmentor

    config, checkpoint = tiny_model_files
    image = np.random.default_rng(1).integers(0, 256, (40, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), image)
    assert (
        main(
            [
                "predict",
                "--config",
                str(config),
                "--checkpoint",
                str(checkpoint),
                str(tmp_path / "x.png"),
                "--out",
                str(tmp_path / "out"),
                "--img-scale",
                "64x40",
            ]
        )
        == 0
    )
    model = build_segmentor(tiny_t_fixture["config"], checkpoint=checkpoint, device="cpu")
    expected = Predictor(model, img_scale=(64, 40)).predict(image).train_ids
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out/trainIds/x.png"), cv2.IMREAD_UNCHANGED), expected)


def test_predict_resume_skips_finished_images(tmp_path, tiny_model_files, caplog):
    config, checkpoint = tiny_model_files
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((16, 16, 3), np.uint8))
    args = [
        "predict",
        "--config",
        str(config),
        "--checkpoint",
        str(checkpoint),
        str(tmp_path / "x.png"),
        "--out",
        str(tmp_path / "out"),
        "--img-scale",
        "32x32",
    ]
    assert main(args) == 0
    assert main(args + ["--resume"]) == 0
    assert "1 of 1 images already done" in caplog.text


def test_predict_with_a_wrong_checkpoint_fails_with_one_clear_message(tmp_path, capsys):
    path = tmp_path / "wrong.pth"
    torch.save({"meta": {}, "state_dict": {"backbone.foo": torch.zeros(1)}}, path)
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((16, 16, 3), np.uint8))
    code = main(
        [
            "predict",
            "--model",
            "upernet_internimage_t_512x1024_160k_cityscapes",
            "--checkpoint",
            str(path),
            str(tmp_path / "x.png"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "unexpected keys (1): backbone.foo" in err and "Traceback" not in err


def test_predict_offline_without_cached_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((16, 16, 3), np.uint8))
    code = main(
        [
            "predict",
            "--model",
            "upernet_internimage_t_512x1024_160k_cityscapes",
            "--hub-offline",
            str(tmp_path / "x.png"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "not in the Hugging Face cache" in capsys.readouterr().err
