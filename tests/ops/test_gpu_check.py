"""scripts/gpu_check.sh --cpu: the dry run of the one GPU call runs every stage here, exactly as CI runs it, so that
the call on a lent GPU does not fail on a typo; each stage's tables and figures are written when it ends."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
# In the order of value the call runs them; the official model is skipped (not failed) without its carries
# (.official, the InternImage source) or without mmcv/mmseg, and says which.
STAGES = [
    "environment",
    "build",
    "precision",
    "official_model",
    "node",
    "dcnv3_fp32",
    "dcnv3_fp16",
    "dcnv3_bf16",
    "decode",
    "channels_last",
    "dcnv3_kernels_model",
    "precision_compiled",
    "tests",
]


def check_command(out: Path, *args: str) -> list[str]:
    return ["bash", str(SCRIPT), "--cpu", "--out", str(out), *args]


def check_env() -> dict:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    env.pop("OFFICIAL_PYTHON", None)
    return env


def run_check(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(check_command(out, *args), capture_output=True, text=True, env=check_env(), timeout=600)


def test_cpu_dry_run_runs_every_stage_and_writes_each_stages_tables_and_figures(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    written = sorted(path.stem for path in (tmp_path / "stages").glob("*.json"))
    assert written == sorted(STAGES), "a stage of the script is not in STAGES (or did not run)"
    table = (tmp_path / "gpu_check.md").read_text()
    merged = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(merged) == STAGES  # in the order they ran
    for stage in STAGES:
        record = json.loads((tmp_path / "stages" / f"{stage}.json").read_text())
        assert record == merged[stage]
        assert (tmp_path / "stages" / f"{stage}.md").read_text().startswith(f"## {stage}: ")
        if stage == "official_model":
            assert record["status"] == "skipped"
            assert ".official" in record["reason"] or "mmcv" in record["reason"], record["reason"]
            continue
        assert record["status"] == "ok", f"{stage}: {record}"
        assert f"| {stage} | ok |" in table
        assert record["figures"], f"{stage} wrote no figures"
    rows = merged["dcnv3_fp32"]["figures"]["devices"][0]["rows"]
    assert rows and all(row["ours_ms"] > 0 and row["timing"] == "loop" for row in rows)
    precision_rows = merged["precision"]["figures"]["rows"]
    assert {row["precision"] for row in precision_rows} >= {"fp32", "tf32", "fp16", "bf16", "bf16-cast"}
    assert all(row["fps"] for row in precision_rows if row["mode"] == "eager")
    layouts = {row["channels_last"] for row in merged["channels_last"]["figures"]["rows"]}
    assert layouts == {True, False}
    kernels = [row["dcnv3_kernel"] for row in merged["dcnv3_kernels_model"]["figures"]["rows"]]
    assert kernels == ["baseline", "smem", "regs", "tile", "tile_regs"]
    assert merged["tests"]["figures"]["tests"] > 0 and merged["tests"]["figures"]["errors"] == 0
    assert (tmp_path / "gpu_check.log").stat().st_size > 0


def test_a_stage_past_the_budget_is_recorded_and_fails_the_check(tmp_path):
    result = run_check(tmp_path, "--only", "dcnv3_fp32", "--budget", "0")
    assert result.returncode != 0
    assert re.search(r"\| dcnv3_fp32 \| skipped – budget spent \|", (tmp_path / "gpu_check.md").read_text())
    assert json.loads((tmp_path / "stages" / "dcnv3_fp32.json").read_text())["status"] == "skipped"


def test_a_call_killed_mid_run_keeps_the_figures_of_the_stages_that_ended(tmp_path):
    command = check_command(tmp_path / "out", "--only", "environment,precision")
    env = {**check_env(), "TMPDIR": str(tmp_path)}  # the killed script cannot remove its work folder
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "environment" not in merged_figures(tmp_path / "out") and time.monotonic() < deadline:
            assert process.poll() is None, "the check ended before its second stage"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kill_processes_naming(tmp_path)  # the stage under `timeout`, which runs in a process group of its own
    merged = merged_figures(tmp_path / "out")
    assert merged["environment"]["status"] == "ok" and merged["environment"]["figures"]["torch"]
    assert "precision" not in merged  # killed while it ran
    assert "| environment | ok |" in (tmp_path / "out" / "gpu_check.md").read_text()


def kill_processes_naming(folder: Path) -> None:
    """SIGKILL every process whose command line holds ``folder`` (the stage's files are under it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(folder).encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:  # ended meanwhile, or not ours to read
            pass


def merged_figures(out: Path) -> dict:
    try:
        return json.loads((out / "gpu_check.json").read_text())
    except (OSError, ValueError):  # not written yet, or being written
        return {}


def test_unknown_arguments_are_refused():
    result = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown argument --gpu" in result.stderr
