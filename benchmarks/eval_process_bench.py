"""Whole-process evaluation speed, as a user runs it: the official evaluator vs ``cityscapes-seg-eval score``.

    .venv/bin/python benchmarks/eval_process_bench.py                          # 100 and 500 images, 5 rounds
    .venv/bin/python benchmarks/eval_process_bench.py --images 100 --rounds 3

Each command is a fresh process, timed from its start to its exit (interpreter start, imports, pairing the
files, scoring, writing the JSON, helper processes included) by the wall clock; its CPU seconds are the
operating system's account of the process and the children it waited for. The commands take turns, round
after round (official, ours with the default workers, ours with ``--workers 1``, in a rotating order), so
that a change in the machine's speed during the run hits all of them alike; the speed-up is taken pair by
pair within a round (over the official, and against ``--workers 1``) and the median is printed
(hyperfine-style). Every command runs in a process group of its own, checked after its exit: a process left
behind in it is reported (and killed).

Commands (the official one is driven by its environment variables, as its documentation says):

    CITYSCAPES_DATASET=<root> CITYSCAPES_RESULTS=<pred> CITYSCAPES_EXPORT_DIR=<dir> csEvalPixelLevelSemanticLabeling
    cityscapes-seg-eval score --gt-root <root> --pred-dir <pred> --json <file> [--workers 1]

Data: synthetic full-size (1024x2048) Cityscapes-layout ground truth and label-id predictions from
``tests/support/synthetic_cityscapes.py`` (seed 0, 20 instance rectangles per image), written once to --data.
Needs ``pip install .[test]`` (cityscapesscripts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bench_common import device_name  # noqa: E402
from support.synthetic_cityscapes import write_split  # noqa: E402  (a test helper, not part of the package)

BIN = Path(sys.executable).parent
IMAGE_SIZE = (1024, 2048)
CITY_SIZE = 50  # images per city folder


def make_data(folder: Path, images: int) -> Tuple[Path, Path]:
    """<folder>/cityscapes (gtFine/val) and <folder>/pred, written unless already there."""
    root, pred = folder / "cityscapes", folder / "pred"
    if not root.is_dir():
        cities = [f"city{index:02d}" for index in range(-(-images // CITY_SIZE))]
        start = time.perf_counter()
        write_split(
            root, pred, cities=cities, frames_per_city=-(-images // len(cities)), size=IMAGE_SIZE, seed=0, objects=20
        )
        print(f"wrote {images} synthetic images to {folder} in {time.perf_counter() - start:.0f} s", flush=True)
    return root, pred


def run_once(command: Sequence[str], env: Dict[str, str]) -> Tuple[float, float, bool]:
    """(wall seconds, CPU seconds, whether it left a process behind); the command must succeed."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its group: anything it left running
            left_behind = True
        except ProcessLookupError:
            left_behind = False
        if process.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, left_behind


def commands(root: Path, pred: Path, scratch: Path) -> Dict[str, Tuple[List[str], Dict[str, str]]]:
    official_env = dict(
        os.environ, CITYSCAPES_DATASET=str(root), CITYSCAPES_RESULTS=str(pred), CITYSCAPES_EXPORT_DIR=str(scratch)
    )
    ours = [str(BIN / "cityscapes-seg-eval"), "score", "--gt-root", str(root), "--pred-dir", str(pred)]
    return {
        "official cityscapesScripts": ([str(BIN / "csEvalPixelLevelSemanticLabeling")], official_env),
        "cityscapes-seg-eval score": (ours + ["--json", str(scratch / "ours.json")], dict(os.environ)),
        "cityscapes-seg-eval score --workers 1": (
            ours + ["--json", str(scratch / "ours1.json"), "--workers", "1"],
            dict(os.environ),
        ),
    }


def largest_difference(scratch: Path) -> float:
    """Between our JSON and the official one, over the class and category scores and the averages."""
    ours = json.loads((scratch / "ours.json").read_text())
    official = json.loads((scratch / "resultPixelLevelSemanticLabeling.json").read_text())
    pairs = [
        (ours["miou"], official["averageScoreClasses"]),
        (ours["iiou"], official["averageScoreInstClasses"]),
        (ours["category_miou"], official["averageScoreCategories"]),
        (ours["category_iiou"], official["averageScoreInstCategories"]),
    ]
    for name, score in ours["classes"].items():
        pairs += [(score["iou"], official["classScores"][name]), (score["iiou"], official["classInstScores"][name])]
    for name, score in ours["categories"].items():
        pairs += [
            (score["iou"], official["categoryScores"][name]),
            (score["iiou"], official["categoryInstScores"][name]),
        ]
    return max(abs(a - b) for a, b in pairs if a is not None and b == b)  # None is official NaN


def bench(images: int, rounds: int, data: Path) -> None:
    root, pred = make_data(data / f"images{images}", images)
    with tempfile.TemporaryDirectory() as scratch:
        runs = commands(root, pred, Path(scratch))
        names = list(runs)
        for name in names:  # warm-up: the file cache, Python's bytecode cache
            run_once(*runs[name])
        walls: Dict[str, List[float]] = {name: [] for name in names}
        cpus: Dict[str, List[float]] = {name: [] for name in names}
        left = {name: 0 for name in names}
        for index in range(rounds):
            for name in names[index % len(names) :] + names[: index % len(names)]:
                wall, cpu, left_behind = run_once(*runs[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
                left[name] += left_behind
        difference = largest_difference(Path(scratch))
    official, single = walls[names[0]], walls[names[2]]
    print(
        f"\n{images} images of {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, {rounds} rounds; largest score difference to the "
        f"official: {difference:.1e}"
    )
    print(
        "| command | wall s, median (min–max) | CPU s, median | speed-up over the official | wall / `--workers 1` | "
        "processes left behind |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        speed_up = statistics.median(o / w for o, w in zip(official, walls[name], strict=True))
        versus_single = statistics.median(w / s for w, s in zip(walls[name], single, strict=True))
        print(
            f"| `{name}` | {statistics.median(walls[name]):.2f} ({min(walls[name]):.2f}–{max(walls[name]):.2f}) "
            f"| {statistics.median(cpus[name]):.2f} | {speed_up:.2f}× | {versus_single:.2f} | {left[name]} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[100, 500], help="data set sizes (default 100 500)")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each command per size (default 5)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cityscapes_eval_bench",
        help="folder for the synthetic data, kept for later runs",
    )
    args = parser.parse_args()
    print(
        f"{device_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for images in args.images:
        bench(images, args.rounds, args.data)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
