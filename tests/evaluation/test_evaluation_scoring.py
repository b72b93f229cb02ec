"""Scores agree with the official cityscapesScripts evaluator on synthetic Cityscapes-layout data."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from support import synthetic_cityscapes as synthetic
from support.official_eval import official_matches, official_scores

from cityscapes_seg_ros.cli.eval_main import main
from cityscapes_seg_ros.evaluation import Accumulator, accumulate_files, parallel, score_files
from cityscapes_seg_ros.evaluation.dataset import DatasetError, find_ground_truth, match_predictions
from cityscapes_seg_ros.evaluation.scoring import confusion_counts
from cityscapes_seg_ros.labels import EVALUATED_CATEGORIES, LABEL_BY_NAME, TRAIN_CLASS_NAMES

TRAIN = LABEL_BY_NAME["train"].id  # absent everywhere: its scores are undefined
BUS = LABEL_BY_NAME["bus"].id  # never in the ground truth, but predicted: IoU 0


def flatten(result: dict) -> dict:
    out = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = value
    return out


def assert_same_scores(ours: dict, reference: dict) -> None:
    ours, reference = flatten(ours), flatten(reference)
    assert ours.keys() == reference.keys()
    for key, expected in reference.items():
        value = ours[key]
        if expected is None:
            assert value is None, key
        else:
            assert value is not None and abs(value - expected) <= 1e-6 * max(abs(expected), 1e-12), (
                key,
                value,
                expected,
            )


def make_split(tmp_path: Path, seed: int, size=(96, 192), frames_per_city=3):
    synthetic.write_split(
        tmp_path / "cityscapes",
        tmp_path / "pred",
        frames_per_city=frames_per_city,
        size=size,
        seed=seed,
        absent_ids=(TRAIN,),
        predicted_only_ids=(BUS,),
    )
    gt_files = find_ground_truth(tmp_path / "cityscapes", "val")
    return gt_files, match_predictions(gt_files, tmp_path / "pred")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_agree_with_the_official_evaluator(tmp_path, seed):
    gt_files, pairs = make_split(tmp_path, seed)
    ours = score_files(pairs, workers=1, progress=False)
    reference = official_scores([p.prediction for p in pairs], gt_files)
    assert_same_scores(ours, reference)
    # The data exercise what they should: an undefined class, a false-positive-only class, instances.
    assert ours["classes"]["train"] == {"iou": None, "iiou": None}
    assert ours["classes"]["bus"]["iou"] == 0.0
    assert 0 < ours["classes"]["car"]["iiou"] < 1 and ours["classes"]["road"]["iiou"] is None
    assert list(ours["classes"]) == list(TRAIN_CLASS_NAMES)
    assert list(ours["categories"]) == list(EVALUATED_CATEGORIES)


def test_parallel_and_merged_scores_equal_the_serial_ones(tmp_path, monkeypatch):
    _, pairs = make_split(tmp_path, seed=3, frames_per_city=4)
    serial = accumulate_files(pairs, workers=1, progress=False)
    monkeypatch.setattr(parallel, "WORK_SECONDS_PER_HELPER", 1e-9)  # helpers even for these small images
    in_parallel = accumulate_files(pairs, workers=3, progress=False)
    first, second = accumulate_files(pairs[:3], 1, False), accumulate_files(pairs[3:], 1, False)
    first.merge(second)
    for other in (in_parallel, first):
        np.testing.assert_array_equal(other.confusion, serial.confusion)
        assert_same_scores(other.result(), serial.result())
    assert serial.confusion.sum() == len(pairs) * 96 * 192  # every pixel counted once


def test_accumulator_on_arrays_matches_the_official_evaluator(tmp_path):
    rng = np.random.default_rng(4)
    accumulator = Accumulator()
    predictions, gt_files = [], []
    for index in range(3):
        frame = synthetic.make_frame(f"ulm_{index:06d}_000019", (48, 80), rng)
        accumulator.add(frame.prediction, frame.gt_label_ids, frame.gt_instance_ids)
        gt = tmp_path / f"{frame.key}_gtFine_labelIds.png"
        cv2.imwrite(str(gt), frame.gt_label_ids)
        cv2.imwrite(str(tmp_path / f"{frame.key}_gtFine_instanceIds.png"), frame.gt_instance_ids)
        cv2.imwrite(str(tmp_path / f"{frame.key}_pred.png"), frame.prediction)
        predictions.append(tmp_path / f"{frame.key}_pred.png")
        gt_files.append(gt)
    assert_same_scores(accumulator.result(), official_scores(predictions, gt_files))
    assert json.loads(json.dumps(accumulator.result())) == accumulator.result()  # plain JSON types

    # Instance ids as signed 32-bit (PIL's "I" mode) with negative values score as non-instance pixels.
    def accumulate(dtype, corner_instance_id: int) -> Accumulator:
        total = Accumulator()
        for frame_file, prediction in zip(gt_files, predictions, strict=True):
            instances = cv2.imread(str(frame_file).replace("labelIds", "instanceIds"), cv2.IMREAD_UNCHANGED)
            instances = instances.astype(dtype)
            instances[0, :5] = corner_instance_id
            labels = cv2.imread(str(frame_file), cv2.IMREAD_UNCHANGED)
            labels[0, :5] = 0
            total.add(cv2.imread(str(prediction), cv2.IMREAD_UNCHANGED), labels, instances)
        return total

    assert_same_scores(accumulate(np.int32, -7).result(), accumulate(np.uint16, 0).result())


def test_confusion_counts_are_exact_for_views_and_for_images_past_float32_counts():
    rng = np.random.default_rng(12)
    big_gt = np.full((4100, 4100), 7, np.uint8)  # 16.8 M pixels: more than a float32 counts exactly
    big_gt[:5, :7] = 33
    big_pred = big_gt.copy()
    big_pred[-1, :3] = 0
    big = confusion_counts(big_gt, big_pred)
    assert big[7, 7] == 4100 * 4100 - 35 - 3 and big[33, 33] == 35 and big[7, 0] == 3 and big.sum() == big_gt.size
    gt, pred = rng.integers(0, 34, (2, 50, 80), dtype=np.uint8)
    expected = np.zeros((34, 34), np.int64)
    np.add.at(expected, (gt[::2, 1::3], pred[::2, 1::3]), 1)
    np.testing.assert_array_equal(confusion_counts(gt[::2, 1::3], pred[::2, 1::3]), expected)


def test_predictions_are_matched_as_the_official_tool_matches_them(tmp_path):
    gt_files, _ = make_split(tmp_path, seed=5)
    pred = tmp_path / "pred"
    # Nested folders and any name <city>_<seq>_<frame>*.png; other files are not predictions.
    moved = pred / "aachen" / "aachen_000001_000020_leftImg8bit.png"
    (pred / "deep" / "er").mkdir(parents=True)
    moved.rename(pred / "deep" / "er" / "aachen_000001_000020_whatever.png")
    (pred / "aachen" / "aachen_000002_000021_notes.txt").write_text("not a prediction")
    (pred / "aachen" / ".aachen_000000_000019_leftImg8bit.png.123.tmp").write_bytes(b"half written")
    pairs = match_predictions(gt_files, pred)
    assert [p.prediction for p in pairs] == official_matches(gt_files, pred)


def test_missing_and_ambiguous_predictions_are_errors_naming_the_files(tmp_path):
    gt_files, _ = make_split(tmp_path, seed=6)
    pred = tmp_path / "pred"
    (pred / "bochum" / "bochum_000001_000020_leftImg8bit.png").unlink()
    with pytest.raises(DatasetError, match=r"no prediction .* for 1 of 6 .*bochum_000001_000020\*\.png"):
        match_predictions(gt_files, pred)
    with pytest.raises(SystemExit):  # the official tool refuses too
        official_matches(gt_files, pred)
    cv2.imwrite(str(pred / "bochum_000001_000020_a.png"), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(pred / "bochum_000001_000020_b.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="several predictions .*bochum_000001_000020_a.png"):
        match_predictions(gt_files, pred)


def test_palette_and_1_bit_predictions_are_read_like_the_official_tool(tmp_path):
    gt_files, pairs = make_split(tmp_path, seed=7, frames_per_city=1)
    for pair in pairs:
        image = Image.fromarray(cv2.imread(str(pair.prediction), cv2.IMREAD_UNCHANGED), mode="L").convert("P")
        image.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
        image.save(pair.prediction)
    Image.fromarray(np.random.default_rng(1).random((96, 192)) < 0.5).save(pairs[1].prediction)  # 1-bit: ids 0, 1
    assert Image.open(pairs[0].prediction).mode == "P" and Image.open(pairs[1].prediction).mode == "1"
    assert_same_scores(
        score_files(pairs, workers=1, progress=False), official_scores([p.prediction for p in pairs], gt_files)
    )


def test_bad_predictions_are_rejected_clearly():
    accumulator = Accumulator()
    gt = np.full((4, 6), 7, np.uint8)
    with pytest.raises(ValueError, match="prediction holds label id 255; Cityscapes label ids are 0..33"):
        accumulator.add(np.full((4, 6), 255, np.uint8), gt)
    with pytest.raises(ValueError, match="differ in size"):
        accumulator.add(np.zeros((4, 5), np.uint8), gt)
    with pytest.raises(ValueError, match="single-channel"):
        accumulator.add(np.zeros((4, 6, 3), np.uint8), gt)
    with pytest.raises(ValueError, match="class road, which has no instances"):
        accumulator.add(gt, gt, np.full((4, 6), 7001, np.uint16))
    assert accumulator.images == 0 and accumulator.confusion.sum() == 0


def test_score_command_writes_the_official_numbers_as_json(tmp_path, capsys):
    gt_files, pairs = make_split(tmp_path, seed=8)
    out = tmp_path / "scores.json"
    code = main(
        [
            "score",
            "--gt-root",
            str(tmp_path / "cityscapes"),
            "--pred-dir",
            str(tmp_path / "pred"),
            "--json",
            str(out),
            "--workers",
            "2",
            "--report-dir",
            str(tmp_path / "report"),
        ]
    )
    assert code == 0
    for name in ("report.md", "iou_per_class.png", "confusion_matrix.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    written = json.loads(out.read_text())
    assert set(written) == {"classes", "miou", "iiou", "categories", "category_miou", "category_iiou"}
    assert all(set(v) == {"iou", "iiou"} for v in [*written["classes"].values(), *written["categories"].values()])
    assert_same_scores(written, official_scores([p.prediction for p in pairs], gt_files))
    table = capsys.readouterr().out
    assert "classes          IoU      nIoU" in table
    assert f"Score Average : {written['miou']:5.3f}    {written['iiou']:5.3f}" in table
    assert "train         :   nan      nan" in table


def test_score_command_reports_bad_input_without_a_traceback(tmp_path, capsys):
    make_split(tmp_path, seed=9, frames_per_city=1)
    root, pred = tmp_path / "cityscapes", tmp_path / "pred"
    args = ["score", "--json", str(tmp_path / "s.json"), "--quiet"]
    assert main(args + ["--gt-root", str(tmp_path / "nowhere"), "--pred-dir", str(pred)]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    assert main(args + ["--gt-root", str(root), "--pred-dir", str(pred), "--split", "test"]) == 2
    assert "no gtFine/test/ folder" in capsys.readouterr().err
    bad = next(pred.rglob("*.png"))
    cv2.imwrite(str(bad), np.full((96, 192), 200, np.uint8))
    assert main(args + ["--gt-root", str(root), "--pred-dir", str(pred)]) == 2
    err = capsys.readouterr().err
    assert f"{bad} vs " in err and "label id 200" in err and "Traceback" not in err
    for content in (b"not a png", b"\x89PNG\r\n\x1a\n", b""):
        bad.write_bytes(content)
        assert main(args + ["--gt-root", str(root), "--pred-dir", str(pred)]) == 2
        err = capsys.readouterr().err
        assert f"{bad}: cannot read" in err and "Traceback" not in err
    assert not (tmp_path / "s.json").exists()
