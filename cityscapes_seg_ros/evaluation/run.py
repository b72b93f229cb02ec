"""Score a prediction folder, or segment a Cityscapes split with a model and score it (resumable, shardable).

Layout of a run's output folder::

    <out>/labelIds/<city>/<key>_leftImg8bit.png   predictions, official result format
    <out>/color/<city>/<key>_leftImg8bit.png      official colours (with --color)
    <out>/run.json                                 the settings the predictions were made with
    <out>/results.json, report.md, iou_per_class.png, confusion_matrix.png
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from ..image_io import read_bgr, write_atomic, write_png
from ..labels import label_ids_to_train_ids, train_ids_to_label_ids
from ..segmenter import NO_CHECKPOINT, RANDOM_WEIGHTS_NOTE, wants_cuda
from ..visualize import colorize
from . import distributed
from .dataset import Sample, find_ground_truth, find_samples, listing, match_predictions
from .report import JSON_NAME, console_table, write_json, write_reports
from .scoring import Accumulator, accumulate_files, read_label_image
from .train_ids import reject_train_id_predictions

log = logging.getLogger(__name__)

SETTINGS_NAME = "run.json"
LABEL_IDS_DIR = "labelIds"
COLOR_DIR = "color"


class RunError(ValueError):
    """A run cannot go on as asked (e.g. its output folder holds predictions made with other settings)."""


@dataclass(frozen=True)
class RunSettings:
    """What a run's predictions depend on; a resumed run must use the same."""

    model: str
    checkpoint: str
    revision: Optional[str]
    split: str
    mode: str
    tta: str
    precision: str
    img_scale: Tuple[int, int]

    def describe(self) -> Dict[str, Optional[str]]:
        about = {key: None if value is None else str(value) for key, value in asdict(self).items()}
        if self.checkpoint == NO_CHECKPOINT:
            about["checkpoint"] = RANDOM_WEIGHTS_NOTE
        return about


def score_predictions(
    gt_root: Path,
    prediction_dir: Path,
    split: str = "val",
    json_path: Optional[Path] = None,
    report_dir: Optional[Path] = None,
    workers: Optional[int] = None,
    details: Optional[Dict[str, str]] = None,
    progress: bool = True,
) -> Tuple[dict, Accumulator]:
    """Match the predictions to gtFine/<split> as the official tool does, score them, write the outputs."""
    gt_files = find_ground_truth(gt_root, split)
    pairs = match_predictions(gt_files, prediction_dir)
    reject_train_id_predictions([pair.prediction for pair in pairs], Path(prediction_dir))
    log.info("scoring %d predictions in %s against %s", len(pairs), prediction_dir, gt_files[0].parents[1])
    accumulator = accumulate_files(pairs, workers=workers, progress=progress)
    result = accumulator.result()
    if json_path is not None:
        write_json(result, json_path)
        log.info("scores written to %s", json_path)
    if report_dir is not None:
        about = {
            "ground truth": f"{gt_root}/gtFine/{split} ({len(pairs)} images)",
            "predictions": str(prediction_dir),
            **(details or {}),
        }
        written = write_reports(result, accumulator.confusion, report_dir, about)
        log.info("report written: %s", ", ".join(str(p) for p in written.values()))
    return result, accumulator


def output_files(out_dir: Path, sample: Sample, color: bool) -> Dict[str, Path]:
    files = {LABEL_IDS_DIR: out_dir / LABEL_IDS_DIR / sample.relative}
    if color:
        files[COLOR_DIR] = out_dir / COLOR_DIR / sample.relative
    return files


def check_settings(out_dir: Path, settings: RunSettings) -> None:
    """Refuse to mix predictions of different settings in one folder; record the settings of a new run."""
    path = out_dir / SETTINGS_NAME
    wanted = json.loads(json.dumps(asdict(settings)))
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"{path}: unreadable ({exc}); remove it or use another --out") from None
        changed = {k: (recorded.get(k), v) for k, v in wanted.items() if recorded.get(k) != v}
        if changed:
            differences = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in changed.items())
            raise RunError(
                f"{out_dir} holds predictions made with other settings ({differences}); "
                "use another --out, or delete the folder to start over"
            )
        return
    write_atomic(path, (json.dumps(wanted, indent=2) + "\n").encode())


def predict_samples(
    samples: Sequence[Sample],
    predict: Callable,
    out_dir: Path,
    color: bool,
    shard: distributed.Shard,
    progress: bool = True,
) -> List[str]:
    """Segment the samples, writing each result as soon as it is done; returns the failures."""
    failed: List[str] = []
    desc = f"predicting [rank {shard.rank}/{shard.world_size}]" if shard.distributed else "predicting"
    for sample in tqdm(samples, desc=desc, unit="img", position=shard.rank, disable=not progress):
        try:
            train_ids = predict(read_bgr(sample.image))
            files = output_files(out_dir, sample, color)
            if color:
                write_png(files[COLOR_DIR], colorize(train_ids)[:, :, ::-1])
            write_png(files[LABEL_IDS_DIR], train_ids_to_label_ids(train_ids))  # last: it marks the image done
        except (ValueError, OSError, RuntimeError, MemoryError) as exc:  # out of memory included
            failed.append(f"{sample.image}: {exc}")
            tqdm.write(f"skipped {sample.image}: {exc}")
    return failed


def add_missing_colors(done: Sequence[Sample], out_dir: Path) -> None:
    """Colour PNGs for predictions made without --color, from their label ids (no second prediction)."""
    for sample in done:
        files = output_files(out_dir, sample, color=True)
        if not files[COLOR_DIR].is_file():
            label_ids = read_label_image(files[LABEL_IDS_DIR])
            write_png(files[COLOR_DIR], colorize(label_ids_to_train_ids(label_ids))[:, :, ::-1])


def run_evaluation(
    cityscapes_root: Path,
    out_dir: Path,
    settings: RunSettings,
    make_predict: Callable[[str], Callable],
    device: str = "auto",
    color: bool = False,
    workers: Optional[int] = None,
    progress: bool = True,
) -> Tuple[Optional[dict], List[str]]:
    """Predict this process's shard of the split's images that are not done yet, then (rank 0) score all.

    ``make_predict(device)`` builds the model and returns ``BGR image -> train ids``; it is only called
    when this shard has images left. Returns (scores or None on ranks > 0, failures of this rank).
    """
    shard = distributed.shard_from_env()
    use_cuda = wants_cuda(device)
    if shard.distributed and use_cuda:
        device = f"cuda:{shard.local_rank}"
    distributed.start(shard, use_cuda)
    try:
        samples = find_samples(cityscapes_root, settings.split)
        out_dir.mkdir(parents=True, exist_ok=True)
        check_settings(out_dir, settings)
        mine = distributed.take_shard(samples, shard)
        todo = [s for s in mine if not output_files(out_dir, s, False)[LABEL_IDS_DIR].is_file()]
        log.info(
            "rank %d/%d: %d of the %d images, %d already predicted",
            shard.rank,
            shard.world_size,
            len(mine),
            len(samples),
            len(mine) - len(todo),
        )
        if color:
            add_missing_colors([s for s in mine if s not in todo], out_dir)
        failed = predict_samples(todo, make_predict(device), out_dir, color, shard, progress) if todo else []
        distributed.wait_for_all(shard)
        if not shard.is_main:
            return None, failed
        missing = [str(s.image) for s in samples if not output_files(out_dir, s, False)[LABEL_IDS_DIR].is_file()]
        if missing:
            raise RunError(
                f"{len(missing)} images have no prediction, so the split cannot be scored "
                f"({listing(missing)}); see the log of the rank that skipped them, fix them "
                "and rerun: finished images are kept"
            )
        details = settings.describe()
        result, _ = score_predictions(
            cityscapes_root,
            out_dir / LABEL_IDS_DIR,
            settings.split,
            out_dir / JSON_NAME,
            out_dir,
            workers,
            details,
            progress,
        )
        if progress:
            print(console_table(result))
        return result, failed
    finally:
        distributed.finish(shard)
