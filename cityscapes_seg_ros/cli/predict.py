"""``cityscapes-seg predict``: segment image files and folders, writing each result as soon as it is done."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Tuple

import numpy as np
from tqdm import tqdm

from ..image_io import IMAGE_EXTENSIONS, read_bgr, write_png
from ..labels import train_ids_to_label_ids
from ..segmenter import ModelOptions, build_predictor
from ..visualize import colorize, overlay

if TYPE_CHECKING:
    from ..segmenter import Prediction

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("trainIds", "labelIds", "color", "overlay")


@dataclass(frozen=True)
class ImageJob:
    source: Path
    relative: Path  # output path below each <out>/<kind>/ folder, with a .png suffix


def find_images(inputs: Iterable[str]) -> Tuple[List[ImageJob], List[str]]:
    """Expand files and folders (recursively) into jobs; returns (jobs, problems with the arguments)."""
    jobs: List[ImageJob] = []
    problems: List[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                problems.append(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            jobs.extend(ImageJob(p, p.relative_to(path).with_suffix(".png")) for p in found)
        elif path.is_file():
            jobs.append(ImageJob(path, Path(path.name).with_suffix(".png")))
        else:
            problems.append(f"{path}: no such file or folder")
    seen: Dict[Path, Path] = {}
    unique = []
    for job in jobs:
        if job.relative in seen:
            problems.append(f"{job.source}: skipped, its output name {job.relative} is taken by {seen[job.relative]}")
            continue
        seen[job.relative] = job.source
        unique.append(job)
    return unique, problems


def output_paths(out_dir: Path, job: ImageJob) -> Dict[str, Path]:
    return {kind: out_dir / kind / job.relative for kind in OUTPUT_KINDS}


def write_outputs(paths: Dict[str, Path], image_bgr: np.ndarray, prediction: Prediction, alpha: float) -> None:
    train_ids = prediction.train_ids
    color_rgb = colorize(train_ids)
    overlay_rgb = overlay(image_bgr[:, :, ::-1], train_ids, alpha)
    write_png(paths["trainIds"], train_ids)
    write_png(paths["labelIds"], train_ids_to_label_ids(train_ids))
    write_png(paths["color"], color_rgb[:, :, ::-1])
    write_png(paths["overlay"], overlay_rgb[:, :, ::-1])


def run_predict(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
    jobs, problems = find_images(args.inputs)
    for problem in problems:
        log.error(problem)
    out_dir = Path(args.out)
    if args.resume:
        before = len(jobs)
        jobs = [j for j in jobs if not all(p.is_file() for p in output_paths(out_dir, j).values())]
        if before != len(jobs):
            log.info("resume: %d of %d images already done", before - len(jobs), before)
    if not jobs:
        log.error("nothing to do: no images to segment") if problems else log.info("nothing left to do")
        return 1 if problems else 0

    predictor = build_predictor(ModelOptions.from_args(args))
    log.info("%d images -> %s", len(jobs), out_dir)

    failed: List[str] = []
    for job in tqdm(jobs, desc="segmenting", unit="img"):
        try:
            image = read_bgr(job.source)
            prediction = predictor.predict(image)
            write_outputs(output_paths(out_dir, job), image, prediction, args.alpha)
        except (ValueError, OSError, RuntimeError, MemoryError) as exc:  # out of memory included
            failed.append(f"{job.source}: {exc}")
            tqdm.write(f"skipped {job.source}: {exc}")
    done = len(jobs) - len(failed)
    log.info("done: %d written to %s, %d skipped", done, out_dir, len(failed) + len(problems))
    for line in failed:
        log.error("skipped %s", line)
    return 1 if failed or problems else 0
