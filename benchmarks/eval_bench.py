"""Offline evaluation speed: this package's scorer vs the official cityscapesScripts evaluator, same files.

    .venv/bin/python benchmarks/eval_bench.py --files 500              # 500 full-size (1024x2048) images
    .venv/bin/python benchmarks/eval_bench.py --files 50 --workers 2   # smaller, quicker

Synthetic Cityscapes-layout ground truth (stuff regions, --objects instance rectangles per image, crowd
regions, ignored ids) and predictions (shifted objects, random regions of any id 0..33) are written once to
--data (a temporary folder unless given; an existing one is reused). Both sides are timed end to end in this
one run: pairing the predictions with the ground truth, reading the PNGs, scoring. The largest difference
between the two sets of scores is printed too.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from cityscapes_seg_ros.evaluation import accumulate_files, synthetic
from cityscapes_seg_ros.evaluation.dataset import find_ground_truth, match_predictions
from cityscapes_seg_ros.evaluation.official import official_matches, official_scores
from cityscapes_seg_ros.evaluation.scoring import default_workers


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
    synthetic.write_split(folder / "cityscapes", folder / "pred", cities=cities, frames_per_city=per_city,
                          size=size, seed=0, objects=objects)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=500, help="number of images (default 500)")
    parser.add_argument("--size", default="1024x2048", help="HxW (default 1024x2048, Cityscapes)")
    parser.add_argument("--objects", type=int, default=20, help="instance rectangles per image (default 20)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="scoring processes")
    parser.add_argument("--data", type=Path, default=None, help="folder for the synthetic data (kept)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.data or Path(scratch)
        if not (folder / "cityscapes").is_dir():
            start = time.perf_counter()
            make_data(folder, args.files, size, args.objects)
            print(f"wrote the synthetic data to {folder} in {time.perf_counter() - start:.0f} s")
        gt_files = find_ground_truth(folder / "cityscapes", "val")[: args.files]

        start = time.perf_counter()
        pairs = match_predictions(gt_files, folder / "pred")
        ours = accumulate_files(pairs, workers=args.workers, progress=False).result()
        ours_s = time.perf_counter() - start

        start = time.perf_counter()
        predictions = official_matches(gt_files, folder / "pred")
        reference = official_scores(predictions, gt_files)
        official_s = time.perf_counter() - start

    print(f"{platform.processor() or platform.machine()}, {default_workers()} cores; "
          f"{len(gt_files)} images of {size[0]}x{size[1]}, {args.objects} objects each")  # fmt: skip
    print(f"official cityscapesScripts: {official_s:8.1f} s  ({1000 * official_s / len(gt_files):.0f} ms/image)")
    print(f"cityscapes-seg-eval ({args.workers} workers): {ours_s:8.1f} s  ({1000 * ours_s / len(gt_files):.0f} ms/image)")
    print(f"speed-up: {official_s / ours_s:.1f}x; largest score difference: {largest_difference(ours, reference):.2e}")
    print(f"mIoU {ours['miou']:.6f} (official {reference['miou']:.6f}), iIoU {ours['iiou']:.6f} "
          f"(official {reference['iiou']:.6f})")  # fmt: skip


if __name__ == "__main__":
    main()
