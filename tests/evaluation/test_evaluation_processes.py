"""``cityscapes-seg-eval score`` as a process: no torch on its path, helper processes only when they pay, and
none left behind."""

import json
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from test_evaluation_scoring import assert_same_scores, make_split

from cityscapes_seg_ros.cli.eval_main import main
from cityscapes_seg_ros.evaluation import Accumulator, accumulate_files, parallel
from cityscapes_seg_ros.evaluation.parallel import WORK_SECONDS_PER_HELPER, helpers_worth_starting, share_work
from cityscapes_seg_ros.evaluation.scoring import accumulate_pair

REPO = Path(__file__).resolve().parents[2]

# Installed as sitecustomize in every Python process of a test (helpers included): importing torch fails and
# leaves a line on stderr, so that a caught ImportError still shows.
BLOCK_TORCH = """
import sys


class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            sys.stderr.write(f"BLOCKED import of {name}\\n")
            raise ImportError(f"{name} is blocked in this test")
        return None


sys.meta_path.insert(0, BlockTorch())
"""


def child_processes() -> set:
    """Processes whose parent is this one (zombies included: a child not reaped is left behind too)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                children.add(int(entry.name))
    return children


def test_helpers_start_only_when_the_work_left_pays_for_them():
    per_image = WORK_SECONDS_PER_HELPER / 4
    assert helpers_worth_starting(3, per_image, workers=2) == 0  # under one helper's worth of work left
    assert helpers_worth_starting(4, per_image, workers=2) == 1
    assert helpers_worth_starting(7, per_image, workers=16) == 1  # one helper per helper's worth
    assert helpers_worth_starting(8, per_image, workers=16) == 2
    assert helpers_worth_starting(40, per_image, workers=4) == 3  # at most workers - 1 helpers
    assert helpers_worth_starting(40, per_image, workers=1) == 0  # --workers 1: this process only
    assert helpers_worth_starting(1, 10.0, workers=4) == 0


def test_helpers_share_the_work_and_give_the_serial_scores(tmp_path):
    _, pairs = make_split(tmp_path, seed=13, frames_per_city=6)
    serial = accumulate_files(pairs, workers=1, progress=False)
    here = []

    def slow_here(pair):  # this process is slow, so that the helper comes up before the work is gone
        here.append(pair)
        time.sleep(0.25)
        return accumulate_pair(pair)

    total, finished = Accumulator(), []
    before = child_processes()
    share_work(deque(pairs), slow_here, total.merge, 1, lambda: finished.append(1))
    assert child_processes() - before == set()
    assert len(finished) == len(pairs) == total.images
    assert 0 < len(here) < len(pairs)  # both processes scored
    np.testing.assert_array_equal(total.confusion, serial.confusion)
    assert_same_scores(total.result(), serial.result())


def test_an_error_in_a_helper_is_the_same_one_line_and_ends_every_helper(tmp_path):
    _, pairs = make_split(tmp_path, seed=14, frames_per_city=4)
    for pair in pairs:
        pair.prediction.write_bytes(b"not a png")

    def slow_here_without_reading(pair):  # only the helpers read the files
        time.sleep(0.4)
        return Accumulator()

    before = child_processes()
    with pytest.raises(ValueError, match=r"_leftImg8bit\.png: cannot read") as raised:
        share_work(deque(pairs), slow_here_without_reading, Accumulator().merge, 2, lambda: None)
    assert "\n" not in str(raised.value)
    assert child_processes() - before == set()


def test_score_leaves_no_process_behind(tmp_path, monkeypatch, caplog):
    make_split(tmp_path, seed=15, frames_per_city=4)
    monkeypatch.setattr(parallel, "WORK_SECONDS_PER_HELPER", 1e-9)  # helpers even for these small images
    caplog.set_level("DEBUG", logger="cityscapes_seg_ros.evaluation.parallel")
    before = child_processes()
    for workers in ("1", "2", "3"):
        assert (
            main(
                [
                    "score",
                    "--gt-root",
                    str(tmp_path / "cityscapes"),
                    "--pred-dir",
                    str(tmp_path / "pred"),
                    "--json",
                    str(tmp_path / f"{workers}.json"),
                    "--workers",
                    workers,
                    "--quiet",
                ]
            )
            == 0
        )
        assert child_processes() - before == set()
    assert "started 2 scoring helper processes" in caplog.text
    assert_same_scores(json.loads((tmp_path / "3.json").read_text()), json.loads((tmp_path / "1.json").read_text()))


def test_score_runs_without_torch(tmp_path):
    """The whole ``score`` path, and a helper process scoring a file, with torch made unimportable."""
    gt_files, pairs = make_split(tmp_path, seed=16, frames_per_city=2)
    blocker = tmp_path / "block_torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_TORCH)
    out = tmp_path / "scores.json"
    script = f"""
import sys
assert any(type(finder).__name__ == "BlockTorch" for finder in sys.meta_path), "sitecustomize not loaded"
from cityscapes_seg_ros.cli.eval_main import main
code = main(["score", "--gt-root", {str(tmp_path / "cityscapes")!r}, "--pred-dir", {str(tmp_path / "pred")!r},
             "--json", {str(out)!r}, "--report-dir", {str(tmp_path / "report")!r}])
assert code == 0, code
from cityscapes_seg_ros.evaluation.parallel import Helper
helper = Helper()
assert helper.receive() == ("ready", None)
helper.send(({str(pairs[0].prediction)!r}, {str(pairs[0].gt_label_ids)!r}, {str(pairs[0].gt_instance_ids)!r}))
kind, accumulator = helper.receive()
assert kind == "result" and accumulator.images == 1, kind
helper.stop(wait=True)
helper.reap()
print("torch loaded:", "torch" in sys.modules)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BLOCKED" not in result.stderr
    assert "torch loaded: False" in result.stdout
    assert json.loads(out.read_text())["miou"] is not None
    assert (tmp_path / "report" / "confusion_matrix.png").stat().st_size > 0
