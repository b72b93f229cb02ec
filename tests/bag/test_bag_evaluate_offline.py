"""``cityscapes-seg-bag evaluate --offline``: the model run on a bag's frames, scored as the offline evaluator
scores the same predictions written as files; broken bags give clear messages and keep partial results."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.bag_support import TINY_SCALE, flip_byte, make_bag, make_split, offline_args, restamp_bag, tiny_model_files

from cityscapes_seg_ros.cli.bag_main import main as bag_main
from cityscapes_seg_ros.cli.main import main as seg_main
from cityscapes_seg_ros.evaluation.dataset import find_ground_truth, match_predictions
from cityscapes_seg_ros.evaluation.report import console_table, markdown_report
from cityscapes_seg_ros.evaluation.scoring import score_files


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, tiny_t_fixture):
    return tiny_model_files(tiny_t_fixture, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    make_split(root)
    return root


def scores_of_predict_cli(root: Path, out: Path, model_files, gt_files=None) -> dict:
    """The reference: `cityscapes-seg predict` files scored by the offline evaluator."""
    config, checkpoint = model_files
    assert (
        seg_main(
            [
                "predict",
                "--config",
                str(config),
                "--checkpoint",
                str(checkpoint),
                str(root / "leftImg8bit/val"),
                "--out",
                str(out),
                "--img-scale",
                TINY_SCALE,
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    pairs = match_predictions(gt_files or find_ground_truth(root, "val"), out / "labelIds")
    return score_files(pairs, workers=1, progress=False)


def test_offline_scores_equal_the_offline_evaluator_on_the_same_frames(split, tmp_path, model_files, capsys):
    bag = make_bag(split, tmp_path / "bag")
    assert (
        bag_main(offline_args(bag, tmp_path / "eval", model_files, "--save-predictions", str(tmp_path / "masks"))) == 0
    )

    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    expected = scores_of_predict_cli(split, tmp_path / "predict", model_files)
    assert report["scores"] == expected
    assert report["scores"]["miou"] > 0  # the tiny model predicts many classes: a real comparison
    assert report["frames"] | {} == {**report["frames"], "images": 4, "predicted": 4, "scored": 4, "dropped": 0}
    assert report["latency_kind"] == "model" and report["latency_ms"]["count"] == 4
    names = [frame["name"] for frame in report["per_frame"]]
    assert names == sorted(names) and all(name.endswith("_leftImg8bit.png") for name in names)
    # The saved masks are the predict CLI's, frame by frame (matched by the bag's stamp -> file metadata).
    for frame in report["per_frame"]:
        saved = cv2.imread(str(tmp_path / "masks" / f"{frame['stamp_ns']}.png"), cv2.IMREAD_UNCHANGED)
        reference = cv2.imread(str(tmp_path / "predict" / "trainIds" / frame["name"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(saved, reference)
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert f"{100 * expected['miou']:.2f}" in markdown and "| road |" in markdown
    # The evaluation's own report: its class and category tables in the markdown, its tables on the console.
    tables = markdown_report(expected, {}).split("## Classes")[1].split("Undefined scores")[0].strip()
    assert tables in markdown
    assert console_table(expected) in capsys.readouterr().out
    assert (tmp_path / "eval" / "latency.png").stat().st_size > 0
    assert (tmp_path / "eval" / "iou_per_class.png").stat().st_size > 0
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 0


def test_frames_without_ground_truth_are_counted_and_the_rest_scored(tmp_path, model_files):
    root = tmp_path / "cs"
    make_split(root)
    gt_files = find_ground_truth(root, "val")
    missing = gt_files[1]
    missing.unlink()
    bag = tmp_path / "bag"
    assert bag_main(["from-cityscapes", "--cityscapes-root", str(root), "--out", str(bag)]) == 0

    assert bag_main(offline_args(bag, tmp_path / "eval", model_files)) == 1  # fewer frames scored than the bag holds
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["frames"]["scored"] == 3 and report["frames"]["without_ground_truth"] == 1
    assert any("no ground truth" in problem for problem in report["problems"])
    assert report["scores"] == scores_of_predict_cli(
        root, tmp_path / "predict", model_files, gt_files[:1] + gt_files[2:]
    )


def test_truncated_bag_keeps_the_frames_before_the_break(tmp_path, model_files, caplog):
    root = tmp_path / "cs"
    make_split(root, size=(384, 768))  # about 2 MB a frame: the MCAP writer closes a chunk (1 MiB) per frame
    bag = make_bag(root, tmp_path / "bag")
    storage = bag / "bag.mcap"
    data = storage.read_bytes()
    storage.write_bytes(data[: len(data) * 6 // 10])  # a recording cut short: no footer, a frame cut in half

    code = bag_main(offline_args(bag, tmp_path / "eval", model_files))
    assert code == 1
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert any("truncated or corrupt" in problem for problem in report["problems"]), report["problems"]
    assert 1 <= report["frames"]["scored"] < 4
    assert report["scores"] is not None and (tmp_path / "eval" / "report.md").is_file()
    assert "truncated or corrupt" in caplog.text

    storage.write_bytes(data[:200])  # nothing left but the header: a clear error, no report
    assert bag_main(offline_args(bag, tmp_path / "eval2", model_files)) == 2


def test_unknown_topic_and_missing_model_fail_clearly(split, tmp_path, model_files, capsys):
    bag = make_bag(split, tmp_path / "bag")
    assert bag_main(offline_args(bag, tmp_path / "eval", model_files, "--image-topic", "/nope")) == 2
    err = capsys.readouterr().err
    assert "/nope" in err and "/cam/front/image_raw" in err
    assert bag_main(offline_args(tmp_path / "no_bag", tmp_path / "eval", model_files)) == 2
    assert "no such bag" in capsys.readouterr().err


def test_offline_without_checkpoint_uses_the_released_weights_never_random(split, tmp_path, capsys, monkeypatch):
    """The README's example (no --checkpoint) must load the hub checkpoint: here the cache is empty -> exit 2."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bag = make_bag(split, tmp_path / "bag")
    out = tmp_path / "eval"
    code = bag_main(
        [
            "evaluate",
            str(bag),
            "--offline",
            "--model",
            "upernet_internimage_t_512x1024_160k_cityscapes",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert "not in the Hugging Face cache" in capsys.readouterr().err
    assert not (out / "report.json").exists()


@pytest.mark.parametrize(
    "restamped",
    [None, ("/cam/front/gt/label_ids", "/cam/front/gt/instance_ids")],
    ids=["every topic", "ground truth only"],
)
def test_frames_sharing_a_stamp_are_an_error_not_a_score(split, tmp_path, model_files, capsys, restamped):
    """Such a bag once scored 8 ground truths against 1 prediction (mIoU 0.000535) with exit status 0."""
    bag = restamp_bag(make_bag(split, tmp_path / "bag"), tmp_path / "restamped", restamped)
    assert bag_main(offline_args(bag, tmp_path / "eval", model_files)) == 2
    err = capsys.readouterr().err
    assert "header stamp" in err and "unique" in err
    assert not (tmp_path / "eval" / "report.json").exists()


def test_a_flipped_byte_is_reported_and_its_frame_not_scored(tmp_path, model_files):
    root = tmp_path / "cs"
    make_split(root, size=(384, 768))  # about 2 MB a frame: several chunks
    bag = make_bag(root, tmp_path / "bag")
    image = sorted((root / "leftImg8bit/val").glob("*/*.png"))[2]  # the third frame in bag order
    storage = bag / "bag.mcap"
    offset = storage.read_bytes().find(cv2.imread(str(image)).tobytes()[:4096])
    assert offset > 0
    flip_byte(storage, offset + 1000)

    assert bag_main(offline_args(bag, tmp_path / "eval", model_files)) == 1
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert any("checksum" in problem for problem in report["problems"]), report["problems"]
    scored = [frame["name"] for frame in report["per_frame"] if frame["predicted"] and frame["ground_truth"]]
    assert 1 <= len(scored) <= 2 and f"{image.parent.name}/{image.name}" not in scored
    assert report["frames"]["scored"] == len(scored)


def test_a_complete_bag_without_metadata_is_evaluated_whole(split, tmp_path, model_files):
    bag = make_bag(split, tmp_path / "bag")
    assert bag_main(offline_args(bag, tmp_path / "with", model_files)) == 0
    (bag / "metadata.yaml").unlink()
    assert bag_main(offline_args(bag, tmp_path / "without", model_files)) == 0
    report = json.loads((tmp_path / "without" / "report.json").read_text())
    assert report["problems"] == [] and report["frames"]["scored"] == 4
    assert report["scores"] == json.loads((tmp_path / "with" / "report.json").read_text())["scores"]


def test_topics_and_types_are_checked_before_the_model_is_loaded(split, tmp_path, model_files, capsys):
    bag = make_bag(split, tmp_path / "bag")
    args = offline_args(bag, tmp_path / "eval", model_files, "--label-topic", "/cam/front/camera_info")
    args[args.index("--checkpoint") + 1] = str(tmp_path / "missing.pth")  # loading the model would fail on this
    assert bag_main(args) == 2
    err = capsys.readouterr().err
    assert "ground-truth label topic" in err and "sensor_msgs/msg/CameraInfo" in err and "missing.pth" not in err
    assert not (tmp_path / "eval").exists()


def test_live_only_options_are_refused_offline(split, tmp_path, model_files, capsys):
    bag = make_bag(split, tmp_path / "bag")
    assert bag_main(offline_args(bag, tmp_path / "eval", model_files, "--record", str(tmp_path / "rec"))) == 2
    assert "--record" in capsys.readouterr().err
    assert not (tmp_path / "rec").exists()
    assert bag_main(offline_args(bag, tmp_path / "eval", model_files, "--lockstep")) == 2
    assert "--lockstep" in capsys.readouterr().err


def test_lockstep_and_rate_are_one_choice(split, tmp_path, model_files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bag_main(["evaluate", str(tmp_path / "bag"), "--lockstep", "--rate", "2"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
