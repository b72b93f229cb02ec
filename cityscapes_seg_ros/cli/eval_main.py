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

from ..checkpoint import CheckpointError
from ..inference import MODES, PRECISIONS, TTA_CHOICES
from ..models import MODEL_REGISTRY
from .main import parse_scale

log = logging.getLogger("cityscapes_seg")


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
    score.add_argument("--pred-dir", required=True, type=Path, help="folder of label-id PNG predictions")
    score.add_argument("--split", default="val", help="gtFine split to score (default val)")
    score.add_argument("--json", required=True, type=Path, help="write the scores here (JSON)")
    score.add_argument("--report-dir", type=Path, default=None,
                       help="also write report.md, iou_per_class.png and confusion_matrix.png here")
    add_common(score)

    run = sub.add_parser(
        "run",
        help="segment a Cityscapes split with a model, then score it (resumable)",
        description="Writes <out>/labelIds/<city>/<name>.png (official format), with --color "
        "<out>/color/..., then results.json, report.md and the plots in <out>. A rerun continues where "
        "the last one stopped; under torchrun each process predicts its shard and rank 0 scores.",
    )
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", choices=list(MODEL_REGISTRY), metavar="NAME",
                       help="model name (see `cityscapes-seg models`)")
    which.add_argument("--config", metavar="FILE", help="YAML/JSON file with an official mmseg model dict")
    run.add_argument("--checkpoint", default="hub",
                     help="a local .pth, 'hub' (the released checkpoint, default), hf://owner/repo/file[@rev], "
                     "or 'none' (random weights, for smoke tests)")
    run.add_argument("--offline", action="store_true", help="use only the local Hugging Face cache")
    run.add_argument("--cityscapes-root", required=True, type=Path, help="Cityscapes root (leftImg8bit/, gtFine/)")
    run.add_argument("--split", default="val", help="split to segment and score (default val)")
    run.add_argument("--out", required=True, type=Path, help="output folder")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index> (default auto)")
    run.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    run.add_argument("--mode", default="whole", choices=list(MODES), help="whole image or sliding window")
    run.add_argument("--tta", default="none", choices=list(TTA_CHOICES), help="test-time augmentation")
    run.add_argument("--img-scale", default="2048x1024", type=parse_scale, metavar="LONGxSHORT",
                     help="keep-ratio resize bound of the test pipeline (default 2048x1024, the official)")
    run.add_argument("--color", action="store_true", help="also write colour PNGs")
    add_common(run)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None,
                        help="scoring processes (default: one per CPU core)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no score table")


def model_predict_factory(args: argparse.Namespace) -> Callable[[str], Callable]:
    """``device -> (BGR image -> train ids)``, building the model only when there is work."""

    def make_predict(device: str) -> Callable:
        from ..builder import build_segmentor
        from ..inference import Predictor
        from .predict import read_model_config

        checkpoint = None if args.checkpoint.lower() == "none" else args.checkpoint
        model = build_segmentor(args.model or read_model_config(args.config), checkpoint, device,
                                offline=args.offline or None)  # fmt: skip
        predictor = Predictor(model, precision=args.precision, mode=args.mode, tta=args.tta, img_scale=args.img_scale)
        log.info("%s on %s (%s, %s, tta=%s)", model.cfg.name, predictor.device, args.precision, args.mode, args.tta)
        return lambda image: predictor.predict(image).train_ids

    return make_predict


def command_score(args: argparse.Namespace) -> int:
    from ..evaluation.report import console_table
    from ..evaluation.run import score_predictions

    result, _ = score_predictions(args.gt_root, args.pred_dir, args.split, args.json, args.report_dir,
                                  args.workers, progress=not args.quiet)  # fmt: skip
    if not args.quiet:
        print(console_table(result))
    return 0


def command_run(args: argparse.Namespace) -> int:
    from ..evaluation.run import RunSettings, run_evaluation

    checkpoint = str(Path(args.checkpoint).resolve()) if Path(args.checkpoint).is_file() else args.checkpoint
    settings = RunSettings(model=args.model or str(Path(args.config).resolve()), checkpoint=checkpoint,
                           split=args.split, mode=args.mode, tta=args.tta, precision=args.precision,
                           img_scale=tuple(args.img_scale))  # fmt: skip
    _, failed = run_evaluation(args.cityscapes_root, args.out, settings, model_predict_factory(args),
                               args.device, args.color, args.workers, progress=not args.quiet)  # fmt: skip
    for line in failed:
        log.error("skipped %s", line)
    return 1 if failed else 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    for name in ("cityscapes_seg", "cityscapes_seg_ros"):
        logging.getLogger(name).setLevel(level)
    if args.workers is not None and args.workers < 1:
        print("cityscapes-seg-eval: error: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        return command_score(args) if args.command == "score" else command_run(args)
    except (CheckpointError, ValueError, RuntimeError, OSError) as exc:
        print(f"cityscapes-seg-eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
