"""``cityscapes-seg export``: the model as one static-shape ONNX file plus a YAML sidecar (docs/export.md)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Tuple

from ..segmenter import ModelOptions, given_options, load_segmentor

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("argmax", "logits")  # export.onnx_export.OUTPUT_KINDS, without importing torch for --help
DCNV3_MODES = ("gridsample", "op")
NOT_FOR_EXPORT = {"precision": "--fp16", "mode": "--size", "tta": None, "img_scale": "--size"}


def parse_size(text: str) -> Tuple[int, int]:
    """``HxW`` (``1024x2048``) -> (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 512x1024, got {text!r}") from None
    if min(height, width) < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def add_export_parser(sub) -> None:
    from ..segmenter import add_model_arguments
    from .common import positive_int

    export = sub.add_parser(
        "export",
        help="export the model to ONNX (TensorRT, ONNX Runtime, Isaac ROS) with a YAML sidecar",
        description="Writes a static-shape ONNX file (opset 18, input 'input' [N, 3, H, W] RGB float) and, "
        "beside it, a YAML sidecar with the input/output names and shapes, mean/std, classes and palette. "
        "See docs/export.md.",
    )
    export.add_argument(
        "--size",
        type=parse_size,
        required=True,
        metavar="HxW",
        help="network input height x width, multiples of 32 (e.g. 512x1024)",
    )
    export.add_argument("--batch", type=positive_int, default=1, help="static batch size (default 1)")
    export.add_argument(
        "--output",
        choices=OUTPUT_KINDS,
        default="argmax",
        help="argmax: int32 train ids [N, H, W] (255 = ignore); logits: float [N, 19, H, W] (default argmax)",
    )
    export.add_argument(
        "--dcnv3",
        choices=DCNV3_MODES,
        default="gridsample",
        help="gridsample: standard ONNX ops only (default); op: one custom cityscapes_seg::DCNv3 "
        "node per block, for a runtime with a DCNv3 plugin",
    )
    export.add_argument("--fp16", action="store_true", help="fp16 weights and compute (input and logits float32)")
    export.add_argument(
        "--normalize-in-graph",
        action="store_true",
        help="the graph normalises: feed RGB 0..255 instead of (x - mean) / std",
    )
    export.add_argument(
        "--out",
        type=Path,
        metavar="FILE.onnx",
        help="output file (default <model>_<H>x<W>_<output>.onnx in the current folder)",
    )
    export.add_argument(
        "--verify", action="store_true", help="run the file in ONNX Runtime (CPU) and compare it with the PyTorch model"
    )
    add_model_arguments(export)


def run_export(args: argparse.Namespace) -> int:
    from ..export.onnx_export import ExportSettings, check_writable, export_onnx, require_export_tools

    unused = [name for name in given_options(args) if name in NOT_FOR_EXPORT]
    if unused:
        name = unused[0]
        instead = f"; use {NOT_FOR_EXPORT[name]}" if NOT_FOR_EXPORT[name] else ""
        raise ValueError(f"--{name.replace('_', '-')} does not apply to export{instead}")
    height, width = args.size
    settings = ExportSettings(
        height, width, args.batch, args.output, args.dcnv3, fp16=args.fp16, normalize_in_graph=args.normalize_in_graph
    )
    options = ModelOptions.from_args(args)
    out = args.out or Path(f"{options.model_name}_{height}x{width}_{args.output}.onnx")
    check_writable(out)
    require_export_tools()
    if args.verify:
        from ..export.verify import check_verifiable

        check_verifiable(settings)  # before anything is written
    segmentor = load_segmentor(options)
    files = export_onnx(segmentor, out, settings, model_name=options.model_name, checkpoint=options.checkpoint)
    print(f"{files.onnx}\n{files.sidecar}")
    if args.verify:
        from ..export.verify import compare_with_pytorch

        print(f"ONNX Runtime vs PyTorch: {compare_with_pytorch(segmentor, files.onnx, settings).describe()}")
    return 0
