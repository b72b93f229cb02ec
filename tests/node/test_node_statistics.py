"""The node's per-class statistics, without ROS."""

import math

import numpy as np
import pytest

from cityscapes_seg_ros.labels import TRAIN_CLASS_NAMES
from cityscapes_seg_ros.node.statistics import (
    Health,
    RecentEvents,
    SequenceGaps,
    camera_health,
    class_stats,
    count_classes,
)

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


def test_recent_events_forget_what_is_older_than_the_window():
    recent = RecentEvents(window_s=10.0)
    recent.add("bad_input", now=100.0)
    recent.add("received", 3, now=105.0)
    assert recent.counts(now=109.0) == {"bad_input": 1, "received": 3}
    assert recent.counts(now=111.0) == {"received": 3}
    assert recent.counts(now=116.0) == {}


def test_sequence_gaps_are_counted_per_publisher_and_restart_after_a_reset():
    gaps = SequenceGaps()

    def info(number, publisher):
        return {"publication_sequence_number": number, "publisher_gid": {"data": bytes([publisher] * 16)}}

    assert gaps.lost({"publication_sequence_number": None}) is None and not gaps.known
    # Two publishers at different rates: their numbers interleave without any loss.
    arrivals = [(1, 1), (2, 1), (3, 1), (1, 2), (4, 1), (2, 2)]
    assert [gaps.lost(info(n, p)) for n, p in arrivals] == [0] * 6 and gaps.known
    assert gaps.lost(info(9, 1)) == 4  # 5..8 of publisher 1 never arrived
    assert gaps.lost(info(1, 1)) == 0  # publisher 1 restarted: counting starts again
    assert gaps.lost(info(3, 1)) == 1


def test_camera_health_goes_warn_then_stale_and_clears_with_the_window():
    def level(silent_s, recent=None, serving=True):
        return camera_health(serving, 5, silent_s, 2.0, recent or {}, 10.0)

    assert level(0.5) == Health("OK", "segmenting")
    assert level(2.5) == Health("WARN", "no frames for 2.5 s")
    assert level(4.0).level == "STALE"
    assert level(0.1, {"bad_input": 2, "failed": 1}) == Health("WARN", "2 bad inputs and 1 failure in the last 10 s")
    assert level(0.1, {"received": 30, "dropped": 4, "lost": 2}).level == "OK"
    assert level(100.0, serving=False) == Health("OK", "inactive")
