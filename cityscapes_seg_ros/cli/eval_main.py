"""``cityscapes-seg-eval``: Cityscapes scores that agree with the official benchmark.

cityscapes-seg-eval score --gt-root DIR --pred-dir DIR [--split val] --json OUT [--report-dir DIR]
cityscapes-seg-eval run --model NAME --cityscapes-root DIR --out DIR [--split val] [--mode slide] ...
torchrun --nproc_per_node N -m cityscapes_seg_ros.cli.eval_main run ...   (one shard per process)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, List, Optional

from ..segmenter import ModelOptions, add_model_arguments, build_predictor
from .common import configure_logging, positive_int, run_command, survives_closed_stdout

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityscapes-seg-eval", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser(
        "score",
        help="score existing predictions (label-id PNGs, the official result format)",
        description="Each <gt-root>/gtFine/<split>/<city>/<key>_gtFine_labelIds.png is paired with the one "
        "file <key>*.png anywhere below --pred-dir, as the official evaluator pairs them.",
    )
    score.add_argument("--gt-root", required=True, type=Path, help="Cityscapes root holding gtFine/")
    score.add_argument(
        "--pred-dir",
        required=True,
        type=Path,
        help="folder of label-id PNG predictions (the labelIds/ of predict, not its trainIds/)",
    )
    score.add_argument("--split", default="val", help="gtFine split to score (default val)")
    score.add_argument("--json", required=True, type=Path, help="write the scores here (JSON)")
    score.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="also write report.md, iou_per_class.png and confusion_matrix.png here",
    )
    add_common(score)

    run = sub.add_parser(
        "run",
        help="segment a Cityscapes split with a model, then score it (resumable)",
        description="Writes <out>/labelIds/<city>/<name>.png (official format), with --color "
        "<out>/color/..., then results.json, report.md and the plots in <out>. A rerun continues where "
        "the last one stopped; under torchrun each process predicts its shard and rank 0 scores.",
    )
    run.add_argument("--cityscapes-root", required=True, type=Path, help="Cityscapes root (leftImg8bit/, gtFine/)")
    run.add_argument("--split", default="val", help="split to segment and score (default val)")
    run.add_argument("--out", required=True, type=Path, help="output folder")
    run.add_argument("--color", action="store_true", help="also write colour PNGs")
    add_common(run)
    add_model_arguments(run)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="scoring processes, this one included (default: one per CPU core; the others "
        "are started only when the work pays for their start)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no score table")


def model_predict_factory(options: ModelOptions) -> Callable[[str], Callable]:
    """``device -> (BGR image -> train ids)``, building the model only when there is work."""

    def make_predict(device: str) -> Callable:
        predictor = build_predictor(options.with_device(device))
        return lambda image: predictor.predict(image).train_ids

    return make_predict


def command_score(args: argparse.Namespace) -> int:
    from ..evaluation.report import console_table
    from ..evaluation.run import score_predictions

    result, _ = score_predictions(
        args.gt_root, args.pred_dir, args.split, args.json, args.report_dir, args.workers, progress=not args.quiet
    )
    if not args.quiet:
        print(console_table(result))
    return 0


def command_run(args: argparse.Namespace) -> int:
    from ..evaluation.run import RunSettings, run_evaluation

    options = ModelOptions.from_args(args)
    settings = RunSettings(split=args.split, **options.identity())
    _, failed = run_evaluation(
        args.cityscapes_root,
        args.out,
        settings,
        model_predict_factory(options),
        options.device,
        args.color,
        args.workers,
        progress=not args.quiet,
    )
    for line in failed:
        log.error("skipped %s", line)
    return 1 if failed else 0


@survives_closed_stdout
def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    command = command_score if args.command == "score" else command_run
    return run_command("cityscapes-seg-eval", lambda: command(args))


if __name__ == "__main__":
    sys.exit(main())
