"""Throughput and argmax agreement with fp32 of each precision x execution mode, whole network, batch 1.

What is timed is the network as the node runs it: backbone and decode head up to the head's logits at 1/4 of the
input (``EncoderDecoder.head_logits``); the class decision at full size is the fused one-pass op, timed by
``decode_bench.py``. The agreement is taken on the decision at the input size (the head's logits resized in fp32).

    .venv/bin/python benchmarks/precision_bench.py --models t,l --size 1024x2048 --device cuda \\
        --precisions fp32,tf32,fp16,bf16 --modes eager,compiled,graphs --json out.json
    .venv/bin/python benchmarks/precision_bench.py --device cpu --size 128x256      # the dry run (tiny model)

Random weights (speed does not depend on the values; the agreement of random weights is a lower bound: their logits
have small margins, so near-ties are common) and camera-like random frames (``precision_check.smooth_frames``).
Precisions are ``choices.PRECISIONS`` as the ``Predictor`` runs them (``precision.py``: autocast with fp32
islands), plus ``fp16-cast`` / ``bf16-cast``: the model's weights converted to the low precision instead
(LayerNorms and the classifier kept fp32, no autocast), to compare the two designs side by side. Modes: ``eager``;
``compiled`` = ``torch.compile(model)`` (default mode; the first call's time is reported apart as compile_s: what
this precision adds to the compilations of the rows before, dynamo's state being reset per model); ``graphs`` = one
CUDA graph of the forward for the fixed input, captured after a warm-up on a side stream and replayed (CUDA only).
Each row: the median of --repeats timed forwards after --warmup (CUDA events on a GPU) as ms and frames/s, and the
fraction of pixels of --frames frames whose winning channel is the fp32 eager one (all of them, and those where
fp32's top-2 logit margin is at least TIE_MARGIN: random weights' logits are nearly tied, see ``precision_check``).
A row that fails reports its error and the run goes on. Memory is freed between models. On a GPU the UperNet head
runs channels-last (the ``Predictor``'s CUDA default); ``--channels-last on,off`` times both layouts (A/B).
``--dcnv3-kernels baseline,smem,...`` (CUDA) repeats the rows with each forward kernel of the DCNv3 CUDA op
(``set_forward_kernel``), recording the kernel requested and the one the op's last call ran (a gather kernel
leaves shapes or alignments it cannot take to ``baseline``).

Defaults by device: on CUDA the models are T, compiled with inductor, 3 warm-up and 10 timed forwards; on the
CPU (the dry run) a tiny model of the official fixtures' shape, compiled with dynamo's "eager" backend (the
tracing and graph breaks are checked, inductor's code generation, minutes on two cores, is not), 1 and 3.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from bench_common import model_names, times_ms
from torch import nn

from cityscapes_seg_ros import build_segmentor
from cityscapes_seg_ros.dcnv3.compiled import load_dcnv3_op
from cityscapes_seg_ros.models import InternImageConfig, SegmentorConfig, UPerHeadConfig
from cityscapes_seg_ros.models.layers import resize_bilinear
from cityscapes_seg_ros.segmenter.precision import DTYPES, precision_scope
from cityscapes_seg_ros.segmenter.precision_check import normalized_inputs, smooth_frames

MODEL_NAMES = model_names(("t", "s", "b", "l", "xl", "segformer-l"))
TINY = SegmentorConfig(  # the official fixtures' shape: for quick dry runs of this script
    name="tiny_upernet_internimage",
    backbone=InternImageConfig(32, (1, 1, 2, 1), (2, 4, 8, 16)),
    decode_head=UPerHeadConfig(in_channels=(32, 64, 128, 256), channels=64, num_classes=150),
)
CAST_PRECISIONS = {"fp16-cast": torch.float16, "bf16-cast": torch.bfloat16}
MODES = ("eager", "compiled", "graphs")
TIE_MARGIN = 1e-2  # as precision_check.argmax_agreement's default

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Row:
    model: str
    precision: str
    mode: str
    ms: Optional[float] = None
    fps: Optional[float] = None
    compile_s: Optional[float] = None  # compiled: the first call; graphs: warm-up and capture
    agreement: Optional[float] = None
    decisive_agreement: Optional[float] = None  # over the pixels whose fp32 top-2 logit margin is >= TIE_MARGIN
    pixels: int = 0
    error: Optional[str] = None
    channels_last: Optional[bool] = None
    dcnv3_kernel: Optional[str] = None  # the CUDA forward kernel requested (None: the op's default) ...
    dcnv3_kernel_used: Optional[str] = None  # ... and the one its latest call ran


def cast_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """The model with its weights in ``dtype``, except the LayerNorms and the classifier (fp32)."""
    converted = copy.deepcopy(model).to(dtype)
    for module in converted.modules():
        if isinstance(module, nn.LayerNorm):
            module.float()
    converted.decode_head.conv_seg.float()
    return converted


def precision_forward(
    model: nn.Module, precision: str, device: torch.device, compile_backend: Optional[str] = None
) -> Forward:
    """x (fp32, normalized) -> the decode head's logits (1/4 of the input size, as the node's decision takes them),
    in ``precision``; compiled with ``compile_backend``."""
    if precision in CAST_PRECISIONS:
        dtype = CAST_PRECISIONS[precision]
        converted = cast_copy(model, dtype)
        head_logits = converted.head_logits
        head_logits = torch.compile(head_logits, backend=compile_backend) if compile_backend else head_logits

        def forward(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return head_logits(x.to(dtype))

        return forward
    network = torch.compile(model.head_logits, backend=compile_backend) if compile_backend else model.head_logits

    def forward(x: torch.Tensor) -> torch.Tensor:
        # no autocast weight cache: a CUDA graph must not keep tensors cached outside it
        with torch.inference_mode(), precision_scope(precision, device, autocast_cache=False):
            return network(x)

    return forward


def capture_graph(forward: Forward, example: torch.Tensor) -> Forward:
    """One CUDA graph of ``forward`` for ``example``'s shape: copy the input in, replay, read the output."""
    static_input = example.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            forward(static_input)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = forward(static_input)

    def replay(x: torch.Tensor) -> torch.Tensor:
        static_input.copy_(x)
        graph.replay()
        return static_output

    replay.graph = graph  # type: ignore[attr-defined]  # kept alive with the function
    return replay


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_row(
    row: Row,
    model: nn.Module,
    inputs: List[torch.Tensor],
    reference: List[Tuple[torch.Tensor, torch.Tensor]],
    args: argparse.Namespace,
    device: torch.device,
) -> None:
    if row.mode == "graphs" and device.type != "cuda":
        row.error = "unavailable: CUDA graphs need a CUDA device"
        return
    compile_backend = args.compile_backend if row.mode == "compiled" else None
    forward = precision_forward(model, row.precision, device, compile_backend)
    if row.mode != "eager":
        start = time.perf_counter()
        if row.mode == "graphs":
            forward = capture_graph(forward, inputs[0])
        else:
            forward(inputs[0])
        synchronize(device)
        row.compile_s = time.perf_counter() - start
    times = times_ms(lambda: forward(inputs[0]), args.repeats, device, args.warmup)
    row.ms = statistics.median(times)
    row.fps = 1e3 / row.ms
    agreeing = decisive = decisive_agreeing = 0
    for x, (winners, tie) in zip(inputs, reference):
        same = decision_logits(forward(x), x).argmax(dim=1) == winners
        agreeing += int(same.sum())
        decisive += int((~tie).sum())
        decisive_agreeing += int((same & ~tie).sum())
        row.pixels += winners.numel()
    row.agreement = agreeing / row.pixels
    row.decisive_agreement = decisive_agreeing / decisive if decisive else None


def decision_logits(head_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The logits the class decision is taken from: the head's, resized to the input in fp32 (not timed)."""
    with torch.inference_mode():
        return resize_bilinear(head_logits.float(), x.shape[2:])


def winners_and_ties(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The winning channel per pixel, and whether the runner-up is within TIE_MARGIN of it."""
    top2 = logits.topk(2, dim=1)
    return top2.indices[:, 0], (top2.values[:, 0] - top2.values[:, 1]) < TIE_MARGIN


def free_memory(device: torch.device) -> None:
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench_model(key: str, args: argparse.Namespace, device: torch.device) -> List[Row]:
    torch.manual_seed(0)
    model = build_segmentor(TINY if key == "tiny" else MODEL_NAMES.get(key, key), None, device)
    model.set_channels_last(args.channels_last[0])
    height, width = args.size
    inputs = [x.to(device) for x in normalized_inputs(smooth_frames(args.frames, height, width, seed=1))]
    eager_fp32 = precision_forward(model, "fp32", device)
    reference = [winners_and_ties(decision_logits(eager_fp32(x), x)) for x in inputs]
    rows = []
    for channels_last in args.channels_last:
        model.set_channels_last(channels_last)
        for kernel in args.dcnv3_kernels or [None]:
            for precision in args.precisions:
                for mode in args.modes:
                    row = Row(model=key, precision=precision, mode=mode, channels_last=channels_last)
                    try:
                        with dcnv3_cuda_kernel(kernel, row):
                            run_row(row, model, inputs, reference, args, device)
                    except Exception as exc:  # noqa: BLE001  # a failing combination is a result, not the end
                        lines = str(exc).strip().splitlines() or [""]
                        row.error = f"{type(exc).__name__}: {lines[0][:300]}"
                    rows.append(row)
                    print(format_row(row, rows), flush=True)
                    gc.collect()
    del model, inputs, reference, eager_fp32
    free_memory(device)
    return rows


@contextlib.contextmanager
def dcnv3_cuda_kernel(name: Optional[str], row: Row) -> Iterator[None]:
    """Within: the DCNv3 CUDA op runs forward kernel ``name`` (None: as it is); the row records the kernel asked
    for and the kernel the op's latest call ran."""
    if name is None:
        yield
        return
    row.dcnv3_kernel = name
    op = load_dcnv3_op("cuda") if torch.cuda.is_available() else None
    if op is None:
        raise RuntimeError("unavailable: DCNv3 CUDA kernels need the CUDA op (a CUDA device)")
    before = op.forward_kernel()
    op.set_forward_kernel(name)
    try:
        yield
        row.dcnv3_kernel_used = op.last_forward_kernel() if hasattr(op, "last_forward_kernel") else None
    finally:
        op.set_forward_kernel(before)


def format_row(row: Row, rows: List[Row]) -> str:
    layout = "on" if row.channels_last else "off"
    kernel = row.dcnv3_kernel or "default"
    if row.dcnv3_kernel_used not in (None, row.dcnv3_kernel):
        kernel += f" (ran {row.dcnv3_kernel_used})"
    lead = f"| {row.model} | {row.precision} | {row.mode} | {layout} | {kernel} |"
    if row.error:
        return f"{lead} | | | | {row.error} | |"
    base = next((r for r in rows if r.model == row.model and r.precision == "fp32" and r.mode == "eager"), None)
    speedup = f"{base.ms / row.ms:.2f}x" if base and base.ms else ""
    compile_s = "" if row.compile_s is None else f"{row.compile_s:.1f}"
    return (
        f"{lead} {row.ms:.2f} | {row.fps:.2f} | {speedup} | "
        f"{compile_s} | {100 * row.agreement:.3f} % | {percent(row.decisive_agreement)} |"
    )


def percent(fraction: Optional[float]) -> str:
    return "" if fraction is None else f"{100 * fraction:.3f} %"


def parse_size(text: str) -> Tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", default=None, help=f"comma-separated: {', '.join(MODEL_NAMES)}, tiny or a name (CUDA: t, CPU: tiny)"
    )
    parser.add_argument("--size", type=parse_size, default=(128, 256), help="HEIGHTxWIDTH of the input")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default="fp32,tf32,fp16,bf16")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--warmup", type=int, default=None, help="untimed forwards per row (CUDA: 3, CPU: 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed forwards per row (CUDA: 10, CPU: 3)")
    parser.add_argument("--frames", type=int, default=2, help="frames for the argmax agreement")
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend (CUDA: inductor, CPU: eager)")
    parser.add_argument("--channels-last", default="auto", help="on, off, on,off (A/B) or auto (on on CUDA)")
    parser.add_argument("--dcnv3-kernels", default="", help="CUDA: rows per DCNv3 forward kernel, e.g. baseline,smem")
    parser.add_argument("--json", default=None, help="write the rows and the setup here")
    args = parser.parse_args(argv)
    layouts = {"on": True, "off": False, "auto": torch.device(args.device).type == "cuda"}
    if any(v not in layouts for v in args.channels_last.split(",")):
        parser.error(f"--channels-last: expected on, off, on,off or auto, got {args.channels_last!r}")
    args.channels_last = [layouts[v] for v in args.channels_last.split(",")]
    args.dcnv3_kernels = [k for k in args.dcnv3_kernels.split(",") if k]
    on_cuda = torch.device(args.device).type == "cuda"
    args.models = [m for m in (args.models or ("t" if on_cuda else "tiny")).split(",") if m]
    args.compile_backend = args.compile_backend or ("inductor" if on_cuda else "eager")
    args.warmup = (3 if on_cuda else 1) if args.warmup is None else args.warmup
    args.repeats = (10 if on_cuda else 3) if args.repeats is None else args.repeats
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = [p for p in args.precisions if p not in DTYPES and p not in CAST_PRECISIONS]
    unknown += [m for m in args.modes if m not in MODES]
    if unknown:
        parser.error(f"unknown precisions or modes: {', '.join(unknown)}")
    if "fp32" not in args.precisions or "eager" not in args.modes:
        print("note: speed-ups are relative to the fp32 eager row, which is not in this run", file=sys.stderr)
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    # Until DCNv3 is one torch.library op, each block's pieces between its graph breaks recompile per stage shape
    # and precision; the default limit (8) would leave the later ones eager.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"{name}, torch {torch.__version__}, input {args.size[0]}x{args.size[1]}, batch 1, random weights; "
        f"median of {args.repeats} after {args.warmup} warm-up; agreement over {args.frames} frames\n"
    )
    print(
        "| model | precision | mode | channels-last | DCNv3 kernel | ms | frames/s | vs fp32 eager | compile/capture s "
        f"| argmax = fp32 | same, margin >= {TIE_MARGIN:g} |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows: List[Row] = []
    for key in args.models:
        rows += bench_model(key, args, device)
    if args.json:
        setup: Dict[str, object] = {
            "device": name,
            "torch": torch.__version__,
            "size": list(args.size),
            "warmup": args.warmup,
            "repeats": args.repeats,
            "frames": args.frames,
            "compile_backend": args.compile_backend,
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"setup": setup, "rows": [asdict(row) for row in rows]}, out, indent=1)


if __name__ == "__main__":
    main()
