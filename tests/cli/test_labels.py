"""Our label table is the Cityscapes benchmark's (cityscapesScripts' labels.py)."""

import numpy as np
from cityscapesscripts.helpers import labels as official

from cityscapes_seg_ros import labels
from cityscapes_seg_ros.visualize import colorize, overlay


def test_every_label_equals_the_official_one():
    ours = [(lb.name, lb.id, lb.train_id, lb.category, lb.category_id, lb.has_instances, lb.ignore_in_eval, lb.color)
            for lb in labels.LABELS]  # fmt: skip
    theirs = [(lb.name, lb.id, lb.trainId, lb.category, lb.categoryId, lb.hasInstances, lb.ignoreInEval, lb.color)
              for lb in official.labels]  # fmt: skip
    assert ours == theirs


def test_train_classes_and_lookup_tables():
    assert len(labels.TRAIN_CLASS_NAMES) == 19
    assert labels.TRAIN_CLASS_NAMES[0] == "road" and labels.TRAIN_CLASS_NAMES[18] == "bicycle"
    train_ids = np.array([[0, 13, 18, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(labels.train_ids_to_label_ids(train_ids), [[7, 26, 33, 0]])
    np.testing.assert_array_equal(labels.label_ids_to_train_ids(np.array([7, 26, 33, 0, 9, 29], np.uint8)),
                                  [0, 13, 18, 255, 255, 255])  # fmt: skip
    for lb in official.labels:
        if 0 <= lb.trainId < 255:
            assert official.trainId2label[lb.trainId].id == labels.train_ids_to_label_ids(np.uint8(lb.trainId))


def test_colorize_uses_the_official_palette_and_overlay_blends():
    train_ids = np.array([[0, 10], [255, 13]], dtype=np.uint8)
    color = colorize(train_ids)
    assert color[0, 0].tolist() == [128, 64, 128] and color[0, 1].tolist() == [70, 130, 180]
    assert color[1, 0].tolist() == [0, 0, 0] and color[1, 1].tolist() == [0, 0, 142]
    image = np.full((2, 2, 3), 200, np.uint8)
    blended = overlay(image, train_ids, alpha=0.25)
    assert blended[0, 0].tolist() == [182, 166, 182]  # 0.75*200 + 0.25*(128, 64, 128), rounded
    assert blended[1, 0].tolist() == [200, 200, 200]  # ignore keeps the image
