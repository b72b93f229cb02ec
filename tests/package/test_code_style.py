"""The code is formatted and linted with the configuration in pyproject.toml (so CI checks it)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ruff(*args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert executable, "ruff is not installed: bash scripts/setup.sh --test installs it"
    return subprocess.run([executable, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_format_leaves_every_file_as_it_is():
    done = ruff("format", "--check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_check_finds_nothing():
    done = ruff("check", ".")
    assert done.returncode == 0, done.stdout + done.stderr
