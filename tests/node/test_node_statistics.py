"""The node's per-class statistics, without ROS."""

import math

import numpy as np
import pytest

from cityscapes_seg_ros.labels import TRAIN_CLASS_NAMES
from cityscapes_seg_ros.node.statistics import class_stats, count_classes

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)


def test_statistics_count_every_pixel_and_average_confidence():
    train_ids = np.array([[0, 0, 13], [255, 13, 13]], np.uint8)
    confidence = np.array([[0.5, 0.7, 0.9], [0.2, 0.6, 0.3]], np.float32)
    counts, sums = count_classes(train_ids, confidence)
    stats = class_stats(counts, sums)
    assert [s.name for s in stats] == list(TRAIN_CLASS_NAMES)
    road, car = stats[0], stats[13]
    assert (road.pixel_count, car.pixel_count, counts[255]) == (2, 3, 1)
    assert road.fraction == pytest.approx(2 / 6) and car.mean_confidence == pytest.approx(0.6)
    assert math.isnan(stats[1].mean_confidence) and stats[1].pixel_count == 0
    assert [s.train_id for s in class_stats(counts, sums, [13, 0])] == [0, 13]
