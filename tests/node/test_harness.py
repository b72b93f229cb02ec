"""The node harness (``cityscapes_seg_ros.harness``): its failures are its own, not the bag tools'."""

from __future__ import annotations

import os
import signal
import sys
import time
import types

import pytest

from cityscapes_seg_ros.bag.bagio import BagError
from cityscapes_seg_ros.harness.interrupts import interrupts_deferred
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


def test_the_node_takes_sigint_even_when_the_tool_was_started_ignoring_it(tmp_path):
    """A tool started as a shell's background job ignores SIGINT; the node it starts is stopped with SIGINT."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
        process = NodeProcess([sys.executable, "-c", code], tmp_path / "node.log")
    finally:
        signal.signal(signal.SIGINT, previous)
    process.process.wait(timeout=60)
    process.stop()
    assert process.log_path.read_text().strip() == "True"


def test_a_sigint_that_was_ignored_stays_ignored_in_a_deferred_block():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_stamp_to_ns_joins_seconds_and_nanoseconds():
    stamp = types.SimpleNamespace(sec=1_700_000_000, nanosec=999_999_999)
    assert stamp_to_ns(stamp) == 1_700_000_000_999_999_999
