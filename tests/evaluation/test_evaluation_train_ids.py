"""A folder of train-id PNGs given to ``score`` is an error that says which folder to pass, not an mIoU of ~0."""

import json

import cv2
import numpy as np
import pytest
from support.bag_support import tiny_model_files
from support.synthetic_cityscapes import make_frame, write_split

from cityscapes_seg_ros.cli.eval_main import main as eval_main
from cityscapes_seg_ros.cli.main import main as seg_main
from cityscapes_seg_ros.evaluation.train_ids import looks_like_train_ids
from cityscapes_seg_ros.labels import LABEL_BY_NAME, TRAIN_LABELS, label_ids_to_train_ids, train_ids_to_label_ids

EVALUATED_LABEL_IDS = [label.id for label in TRAIN_LABELS]  # 7, 8, 11, ... 33


def image_of(values, size=(32, 48), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.array(values, np.uint8), size=size)


def test_train_ids_are_told_from_label_ids():
    street = ["road", "sidewalk", "building", "pole", "vegetation", "sky", "car", "person"]
    train_ids = image_of([LABEL_BY_NAME[name].train_id for name in street])
    assert looks_like_train_ids([train_ids, train_ids])
    assert looks_like_train_ids([np.where(train_ids == 0, 255, train_ids).astype(np.uint8)])  # with ignore
    assert looks_like_train_ids([image_of([0, 255])])  # 255 is never a label id

    # Label-id predictions: the 19 evaluated ids, 0 where ignored; also a scene of classes with ids <= 18 only.
    assert not looks_like_train_ids([image_of([0, *EVALUATED_LABEL_IDS])])
    assert not looks_like_train_ids([image_of([0, 7, 8, 11, 12, 13, 17])])
    assert not looks_like_train_ids([train_ids_to_label_ids(train_ids)])
    # Ground truth used as predictions: void ids 1..6, and ids above 18.
    frame = make_frame("ulm_000000_000019", (64, 128), np.random.default_rng(1))
    assert not looks_like_train_ids([frame.gt_label_ids, frame.prediction])
    # One label-id file among the first ones is enough; so is a 16-bit file.
    assert not looks_like_train_ids([train_ids, image_of([0, *EVALUATED_LABEL_IDS])])
    assert not looks_like_train_ids([train_ids.astype(np.uint16)])
    assert not looks_like_train_ids([])


@pytest.fixture
def predicted(tmp_path, tiny_t_fixture):
    """Ground truth and what ``cityscapes-seg predict`` writes for its images (trainIds/, labelIds/, ...)."""
    root = tmp_path / "cityscapes"
    write_split(root, tmp_path / "unused", size=(64, 128), seed=21, with_images=True)
    config, checkpoint = tiny_model_files(tiny_t_fixture, tmp_path)  # predicts many classes
    out = tmp_path / "predicted"
    assert (
        seg_main(
            [
                "predict",
                "--config",
                str(config),
                "--checkpoint",
                str(checkpoint),
                "--img-scale",
                "128x64",
                "--device",
                "cpu",
                str(root / "leftImg8bit" / "val"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return root, out


def test_score_refuses_predicts_train_ids_and_names_the_label_id_folder(predicted, tmp_path, capsys):
    root, out = predicted
    train_id_files = sorted((out / "trainIds").rglob("*.png"))
    assert len(train_id_files) == 6
    for path in train_id_files:  # valid label ids all: without the check they would be scored, near 0
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).max() <= 18
    args = ["score", "--gt-root", str(root), "--json", str(tmp_path / "s.json"), "--quiet"]

    assert eval_main(args + ["--pred-dir", str(out / "trainIds")]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'trainIds'} holds train-id PNGs" in err and f"pass {out / 'labelIds'}" in err
    assert "Traceback" not in err and not (tmp_path / "s.json").exists()

    assert eval_main(args + ["--pred-dir", str(out / "labelIds")]) == 0
    assert (tmp_path / "s.json").is_file()


def test_label_ids_of_few_classes_and_ground_truth_copies_are_scored(tmp_path):
    """Genuine label ids are never refused: predictions of only classes with ids <= 18, and the ground truth
    itself (void ids 1..6 included), the latter scoring 1.0."""
    root, pred = tmp_path / "cityscapes", tmp_path / "pred"
    write_split(root, pred, size=(64, 128), seed=22, frames_per_city=2)
    args = ["score", "--gt-root", str(root), "--pred-dir", str(pred), "--json", str(tmp_path / "s.json"), "--quiet"]
    for path in pred.rglob("*.png"):
        cv2.imwrite(str(path), image_of([0, 7, 8, 11, 17], size=(64, 128)))
    assert eval_main(args) == 0
    for path in pred.rglob("*.png"):
        gt = root / "gtFine" / "val" / path.parent.name / path.name.replace("leftImg8bit", "gtFine_labelIds")
        label_ids = cv2.imread(str(gt), cv2.IMREAD_UNCHANGED)
        assert looks_like_train_ids([label_ids_to_train_ids(label_ids)])  # as train ids, it would be refused
        cv2.imwrite(str(path), label_ids)
    assert eval_main(args) == 0
    assert json.loads((tmp_path / "s.json").read_text())["miou"] == 1.0
