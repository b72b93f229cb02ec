"""The node harness (``cityscapes_seg_ros.harness``): its failures are its own, not the bag tools'."""

from __future__ import annotations

import sys
import types

import pytest

from cityscapes_seg_ros.bag.bagio import BagError
from cityscapes_seg_ros.harness.node_process import NodeProcess
from cityscapes_seg_ros.harness.ros import HarnessError, stamp_to_ns


def test_a_node_that_exits_early_is_a_harness_error_not_a_bag_error(tmp_path):
    process = NodeProcess(
        [sys.executable, "-c", "print('node going away'); raise SystemExit(3)"], tmp_path / "node.log"
    )
    try:
        process.process.wait(timeout=60)
        with pytest.raises(HarnessError, match="status 3") as caught:
            process.check_alive()
        assert not isinstance(caught.value, BagError)
        assert "node going away" in str(caught.value)
    finally:
        process.stop()


def test_stamp_to_ns_joins_seconds_and_nanoseconds():
    stamp = types.SimpleNamespace(sec=1_700_000_000, nanosec=999_999_999)
    assert stamp_to_ns(stamp) == 1_700_000_000_999_999_999
