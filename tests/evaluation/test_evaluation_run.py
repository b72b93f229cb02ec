"""``cityscapes-seg-eval run``: resumable, sharded under torchrun, clear errors, reports a person can read."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml
from support.official_eval import official_scores
from support.synthetic_cityscapes import write_split
from test_evaluation_scoring import assert_same_scores

from cityscapes_seg_ros.cli.eval_main import main
from cityscapes_seg_ros.evaluation.dataset import find_ground_truth, match_predictions
from cityscapes_seg_ros.evaluation.distributed import Shard, take_shard
from cityscapes_seg_ros.labels import label_ids_to_train_ids
from cityscapes_seg_ros.segmenter.inference import Predictor
from cityscapes_seg_ros.visualize import colorize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GENUINE_PREDICT = Predictor.predict


@pytest.fixture
def cityscapes(tmp_path):
    """A 6-image val split (64x128) with ground truth, in the Cityscapes layout."""
    root = tmp_path / "cityscapes"
    write_split(root, tmp_path / "unused_predictions", size=(64, 128), seed=11, with_images=True)
    return root


@pytest.fixture
def run_args(tmp_path, cityscapes, tiny_t_fixture, tiny_t_checkpoint):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"model": json.loads(json.dumps(tiny_t_fixture["config"]))}))
    return [
        "run",
        "--config",
        str(config),
        "--checkpoint",
        str(tiny_t_checkpoint),
        "--cityscapes-root",
        str(cityscapes),
        "--out",
        str(tmp_path / "out"),
        "--img-scale",
        "128x64",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--quiet",
    ]


class Killed(BaseException):
    """Stands for a kill: like KeyboardInterrupt, nothing in the run catches it."""


class CountingPredict:
    """Wraps Predictor.predict: records every finished prediction, can stop the run like a kill."""

    def __init__(self, monkeypatch, stop_after=None):
        self.finished = []
        self.stop_after = stop_after

        def predict(predictor, image):
            if self.stop_after is not None and len(self.finished) == self.stop_after:
                raise Killed
            result = GENUINE_PREDICT(predictor, image)
            self.finished.append(image.tobytes())
            return result

        monkeypatch.setattr(Predictor, "predict", predict)


def test_an_interrupted_run_resumes_without_predicting_anything_twice(tmp_path, run_args, cityscapes, monkeypatch):
    first = CountingPredict(monkeypatch, stop_after=4)
    with pytest.raises(Killed):
        main(run_args)
    out = tmp_path / "out"
    assert len(list((out / "labelIds").rglob("*.png"))) == 4
    assert not list(out.rglob("*.tmp"))  # nothing half written

    second = CountingPredict(monkeypatch)
    assert main(run_args) == 0
    predicted = first.finished + second.finished
    assert len(second.finished) == 2 and len(set(predicted)) == len(predicted) == 6

    third = CountingPredict(monkeypatch)
    assert main(run_args + ["--color"]) == 0
    assert third.finished == []  # a finished run only scores again; colours asked for later come from the ids
    for color in (out / "color").rglob("*.png"):
        label_ids = cv2.imread(str(out / "labelIds" / color.relative_to(out / "color")), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(cv2.imread(str(color))[:, :, ::-1], colorize(label_ids_to_train_ids(label_ids)))
    assert len(list((out / "color").rglob("*.png"))) == 6

    gt_files = find_ground_truth(cityscapes, "val")
    predictions = [p.prediction for p in match_predictions(gt_files, out / "labelIds")]
    assert_same_scores(json.loads((out / "results.json").read_text()), official_scores(predictions, gt_files))


def test_run_writes_reports_a_person_can_open(tmp_path, run_args):
    assert main(run_args + ["--color"]) == 0
    out = tmp_path / "out"
    for name in ("iou_per_class.png", "confusion_matrix.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and min(image.shape[:2]) > 300 and image.std() > 10  # a drawn figure
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert "| mIoU (classes) |" in report and "![IoU per class](iou_per_class.png)" in report
    if results["miou"] is not None:
        assert f"{100 * results['miou']:.2f}" in report
    colors = sorted((out / "color").rglob("*.png"))
    label_ids = sorted((out / "labelIds").rglob("*.png"))
    assert [p.relative_to(out / "color") for p in colors] == [p.relative_to(out / "labelIds") for p in label_ids]
    assert len(colors) == 6


def test_run_refuses_to_mix_predictions_of_other_settings(tmp_path, run_args, capsys):
    assert main(run_args) == 0
    capsys.readouterr()
    assert main([a if a != "128x64" else "256x128" for a in run_args]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "img_scale" in err


def test_run_reports_a_wrong_root_and_images_without_ground_truth(tmp_path, run_args, cityscapes, capsys):
    def run_with_root(root) -> str:
        args = list(run_args)
        args[args.index("--cityscapes-root") + 1] = str(root)
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err

    assert "no such folder" in run_with_root(tmp_path / "missing")
    assert "no leftImg8bit/val/ folder" in run_with_root(cityscapes / "gtFine")
    orphan = cityscapes / "leftImg8bit" / "val" / "aachen" / "aachen_000099_000019_leftImg8bit.png"
    cv2.imwrite(str(orphan), np.zeros((64, 128, 3), np.uint8))
    err = run_with_root(cityscapes)
    assert "1 images have no ground truth" in err and orphan.name in err
    orphan.unlink()
    gt = next((cityscapes / "gtFine" / "val").rglob("*_instanceIds.png"))
    gt.unlink()
    assert "instance ground truth missing" in run_with_root(cityscapes)


def test_an_unreadable_image_is_skipped_and_named(tmp_path, run_args, cityscapes, capsys):
    broken = next((cityscapes / "leftImg8bit" / "val").rglob("*.png"))
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(run_args) == 2  # the split cannot be scored without it
    err = capsys.readouterr().err
    assert "1 images have no prediction" in err and broken.name in err
    assert len(list((tmp_path / "out" / "labelIds").rglob("*.png"))) == 5  # the rest is done and kept


def test_shards_are_disjoint_and_cover_the_list():
    items = list(range(11))
    for world_size in (1, 2, 3, 4):
        shards = [take_shard(items, Shard(rank, world_size)) for rank in range(world_size)]
        assert sorted(sum(shards, [])) == items
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_torchrun_with_two_processes_splits_the_work_and_rank_0_scores(tmp_path, run_args):
    env = dict(os.environ, OMP_NUM_THREADS="1", CITYSCAPES_SEG_DCNV3_BUILD="0")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "cityscapes_seg_ros.cli.eval_main",
    ] + run_args
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0/2: 3 of the 6 images, 0 already predicted" in result.stderr
    assert "rank 1/2: 3 of the 6 images, 0 already predicted" in result.stderr
    assert result.stderr.count("scores written to") == 1  # only rank 0 scores
    out = tmp_path / "out"
    assert len(list((out / "labelIds").rglob("*.png"))) == 6
    assert json.loads((out / "results.json").read_text())["classes"].keys()

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rank 1/2: 3 of the 6 images, 3 already predicted" in again.stderr
