"""``cityscapes-seg``: list the models, segment images.

cityscapes-seg models [--json]
cityscapes-seg predict [--model NAME|FILE] [--checkpoint hub|PATH|hf://...|none] INPUT... --out DIR
cityscapes-seg demo [model options] [--out DIR] [--images DIR | --camera TOPIC --frames N] [--timeout S]
cityscapes-seg doctor [--json]
cityscapes-seg export [model options] --size HxW [--output argmax|logits] [--dcnv3 gridsample|op] [--fp16] ...
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from ..segmenter import add_model_arguments
from .common import configure_logging, run_command, survives_closed_stdout
from .demo import add_demo_parser
from .doctor import add_doctor_parser
from .export import add_export_parser


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
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the mask, 0..1")
    predict.add_argument("--resume", action="store_true", help="skip inputs whose four outputs already exist")
    add_model_arguments(predict)
    add_demo_parser(sub)
    add_doctor_parser(sub)
    add_export_parser(sub)
    return parser


def list_models(as_json: bool) -> int:
    from .models_table import model_rows, print_model_table

    rows = model_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print_model_table(rows)
    return 0


@survives_closed_stdout
def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if args.command == "models":
        return list_models(args.json)
    if args.command == "doctor":
        from .doctor import run_doctor

        return run_doctor(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_command("cityscapes-seg", lambda: run_demo(args))
    if args.command == "export":
        from .export import run_export

        return run_command("cityscapes-seg", lambda: run_export(args))
    from .predict import run_predict

    return run_command("cityscapes-seg", lambda: run_predict(args))


if __name__ == "__main__":
    sys.exit(main())
