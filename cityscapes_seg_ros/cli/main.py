"""``cityscapes-seg``: list the models, segment images.

    cityscapes-seg models [--json]
    cityscapes-seg predict --model NAME [--checkpoint PATH|hub|hf://...] INPUT... --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import List, Optional

from ..checkpoint import CheckpointError
from ..inference import MODES, PRECISIONS, TTA_CHOICES
from ..models import MODEL_REGISTRY
from .models_table import model_rows, print_model_table

log = logging.getLogger("cityscapes_seg")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityscapes-seg", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="list the available models with their parameter counts")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")

    predict = sub.add_parser(
        "predict",
        help="segment image files and folders",
        description="Writes, per input image, <out>/trainIds/<name>.png (train ids, 255 = ignore), "
        "<out>/labelIds/<name>.png (Cityscapes label ids: the official result format), "
        "<out>/color/<name>.png and <out>/overlay/<name>.png. Folders are searched recursively "
        "and their sub-folders are kept.",
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    which = predict.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", choices=list(MODEL_REGISTRY), metavar="NAME",
                       help="model name (see `cityscapes-seg models`)")
    which.add_argument("--config", metavar="FILE",
                       help="YAML/JSON file with an official mmseg model dict (type EncoderDecoder), "
                       "for variants outside the nine names; needs --checkpoint")
    predict.add_argument("--checkpoint", default="hub",
                         help="a local .pth file, 'hub' (the released checkpoint, default) or hf://owner/repo/file[@rev]")
    predict.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    predict.add_argument("--cache-dir", default=None, help="Hugging Face cache folder")
    predict.add_argument("--offline", action="store_true", help="use only the local Hugging Face cache")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<index> (default auto)")
    predict.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    predict.add_argument("--mode", default="whole", choices=list(MODES), help="whole image or sliding window")
    predict.add_argument("--tta", default="none", choices=list(TTA_CHOICES),
                         help="test-time augmentation: ms = the official scales 0.5..1.75, flip = horizontal")
    predict.add_argument("--img-scale", default="2048x1024", type=parse_scale, metavar="LONGxSHORT",
                         help="keep-ratio resize bound of the test pipeline (default 2048x1024, the official)")
    predict.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the mask, 0..1")
    predict.add_argument("--resume", action="store_true", help="skip inputs whose four outputs already exist")
    return parser


def parse_scale(text: str) -> tuple:
    try:
        long_edge, short_edge = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LONGxSHORT such as 2048x1024, got {text!r}") from None
    if min(long_edge, short_edge) < 1:
        raise argparse.ArgumentTypeError(f"image scale must be positive, got {text!r}")
    return long_edge, short_edge


def configure_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    for name in ("cityscapes_seg", "cityscapes_seg_ros"):
        logging.getLogger(name).setLevel(level)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if args.command == "models":
        rows = model_rows()
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print_model_table(rows)
        return 0
    from .predict import run_predict

    try:
        return run_predict(args)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        print(f"cityscapes-seg: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
