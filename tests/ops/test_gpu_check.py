"""scripts/gpu_check.sh --cpu: the dry run of the one GPU call runs every stage it can here, so that the call on a
lent GPU does not fail on a typo. The official model needs mmcv/mmseg (not installed here) and the GPU tests
stage is pytest itself: both are left out of this run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["environment", "dcnv3_fp32", "dcnv3_fp16", "dcnv3_bf16", "decode", "precision", "node"]


def run_check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu", "--out", str(tmp_path), *args],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip


def test_cpu_dry_run_runs_every_stage_and_writes_the_table_and_figures(tmp_path):
    result = run_check(tmp_path, "--only", ",".join(STAGES))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    table = (tmp_path / "gpu_check.md").read_text()
    for stage in STAGES:
        assert f"| {stage} | ok |" in table, f"stage {stage} did not run ok:\n{table}"
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = figures["dcnv3_fp32"]["devices"][0]["rows"]
    assert rows and all(row["ours_ms"] > 0 for row in rows)
    assert {"decode", "precision", "node"} <= set(figures)
    assert (tmp_path / "gpu_check.log").stat().st_size > 0


def test_a_failing_stage_is_reported_and_fails_the_check(tmp_path):
    result = run_check(tmp_path, "--only", "dcnv3_fp32", "--budget", "0")
    assert result.returncode != 0
    assert "| dcnv3_fp32 | skipped | budget spent |" in (tmp_path / "gpu_check.md").read_text()


def test_unknown_arguments_are_refused():
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--gpu"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown argument --gpu" in result.stderr
