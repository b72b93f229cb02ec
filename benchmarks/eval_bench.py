"""Offline evaluation speed: this package's scorer vs the official cityscapesScripts evaluator, same files.

    .venv/bin/python benchmarks/eval_bench.py --files 500              # 500 full-size (1024x2048) images
    .venv/bin/python benchmarks/eval_bench.py --files 50 --workers 2   # smaller, quicker

In-process figures (the per-image cost); ``eval_process_bench.py`` times the whole processes as a user runs
them. Synthetic Cityscapes-layout ground truth (stuff regions, --objects instance rectangles per image, crowd
regions, ignored ids) and predictions (shifted objects, random regions of any id 0..33) are written once to
--data (a temporary folder unless given; an existing one is reused). Both sides are timed end to end in this
one run: pairing the predictions with the ground truth, reading the PNGs, scoring; ours with --workers
processes and with one (the per-core comparison, less sensitive to other load on the machine). The largest
difference between the scores is printed too.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from cityscapes_seg_ros.evaluation import accumulate_files
from cityscapes_seg_ros.evaluation.dataset import find_ground_truth, match_predictions
from cityscapes_seg_ros.evaluation.scoring import default_workers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test helpers below
from support import synthetic_cityscapes as synthetic  # noqa: E402
from support.official_eval import official_matches, official_scores  # noqa: E402


def largest_difference(ours: dict, reference: dict) -> float:
    """Largest absolute difference over every figure; inf when one side is undefined and the other not."""
    worst = 0.0
    for key, expected in reference.items():
        value = ours[key]
        if isinstance(expected, dict):
            worst = max(worst, largest_difference(value, expected))
        elif (value is None) != (expected is None):
            return float("inf")
        elif expected is not None:
            worst = max(worst, abs(value - expected))
    return worst


def make_data(folder: Path, files: int, size: tuple, objects: int) -> None:
    cities = [f"city{index:02d}" for index in range((files + 49) // 50)]
    per_city = -(-files // len(cities))
    synthetic.write_split(
        folder / "cityscapes",
        folder / "pred",
        cities=cities,
        frames_per_city=per_city,
        size=size,
        seed=0,
        objects=objects,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=500, help="number of images (default 500)")
    parser.add_argument("--size", default="1024x2048", help="HxW (default 1024x2048, Cityscapes)")
    parser.add_argument("--objects", type=int, default=20, help="instance rectangles per image (default 20)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="scoring processes")
    parser.add_argument("--data", type=Path, default=None, help="folder for the synthetic data (kept)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    load_before = f"{os.getloadavg()[0]:.2f}"  # other processes on the machine skew every figure

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.data or Path(scratch)
        if not (folder / "cityscapes").is_dir():
            start = time.perf_counter()
            make_data(folder, args.files, size, args.objects)
            print(f"wrote the synthetic data to {folder} in {time.perf_counter() - start:.0f} s")
        gt_files = find_ground_truth(folder / "cityscapes", "val")[: args.files]

        def ours(workers: int):
            start = time.perf_counter()
            pairs = match_predictions(gt_files, folder / "pred")
            result = accumulate_files(pairs, workers=workers, progress=False).result()
            return result, time.perf_counter() - start

        parallel, parallel_s = ours(args.workers)
        start = time.perf_counter()
        predictions = official_matches(gt_files, folder / "pred")
        reference = official_scores(predictions, gt_files)
        official_s = time.perf_counter() - start
        serial, serial_s = ours(1)

    images = len(gt_files)
    print(
        f"{platform.processor() or platform.machine()}, {default_workers()} cores, load average before/after "
        f"{load_before} / {os.getloadavg()[0]:.2f}; {images} images of {size[0]}x{size[1]}, "
        f"{args.objects} objects each"
    )
    for name, seconds in (
        ("official cityscapesScripts", official_s),
        ("cityscapes-seg-eval, 1 worker", serial_s),
        (f"cityscapes-seg-eval, {args.workers} workers", parallel_s),
    ):
        print(
            f"{name:<32} {seconds:7.1f} s  {1000 * seconds / images:5.0f} ms/image  "
            f"speed-up {official_s / seconds:4.1f}x"
        )
    difference = max(largest_difference(parallel, reference), largest_difference(serial, reference))
    print(
        f"largest score difference to the official: {difference:.2e}; mIoU {parallel['miou']:.6f} "
        f"(official {reference['miou']:.6f}), iIoU {parallel['iiou']:.6f} (official {reference['iiou']:.6f})"
    )


if __name__ == "__main__":
    main()
