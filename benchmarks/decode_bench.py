"""The class decision of a 2048x1024 frame from the head's low-resolution logits: the reference (resize to full
size with F.interpolate, then ``decode_scores``) against ``decode_logits`` (one pass, no full-size logits), side
by side in one run on each device; and the node's per-frame post-processing on the device: decision + colour
(palette lookup) + statistics (per-label pixels and summed confidence).

Logits: UperNet's output is at 1/4 of the network input, so 128x256 for a 512x1024 network input (upscale 8
to the frame) and 256x512 for a full-size 1024x2048 one (upscale 4); 150 channels (the released ADE-style head)
and 19 (Cityscapes). Timing: median of --repeats calls after a warm-up, calls of the compared methods
interleaved; CUDA with CUDA events, and the peak memory each call allocates beyond its inputs.

    .venv/bin/python benchmarks/decode_bench.py [--device cpu|cuda|all] [--repeats N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import device_name, interleaved_medians_ms  # noqa: E402

from cityscapes_seg_ros.labels import TRAIN_ID_PALETTE  # noqa: E402
from cityscapes_seg_ros.models.layers import resize_bilinear  # noqa: E402
from cityscapes_seg_ros.ops import compiled  # noqa: E402
from cityscapes_seg_ros.ops.score_decode import (  # noqa: E402
    CUDA_OP_NAME,
    OP_NAME,
    decode_logits,
    decode_scores,
    tensor_label_histogram,
)

FRAME = (1024, 2048)  # output height, width
LOGIT_SHAPES = [(150, 128, 256), (19, 128, 256), (150, 256, 512), (19, 256, 512)]


def medians(device: torch.device, fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    return dict(zip(fns, interleaved_medians_ms(list(fns.values()), repeats, device)))


def peak_mib(device: torch.device, fn: Callable[[], object]) -> float | None:
    """MiB that one call allocates at its peak beyond what was allocated before it (CUDA only)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def decision_rows(device: torch.device, repeats: int, dtype: torch.dtype, scale: int = 1) -> list[dict]:
    frame, rows = scaled_frame(scale), []
    for channels, height, width in scaled_logit_shapes(scale):
        generator = torch.Generator().manual_seed(channels + height)
        logits = (torch.randn(channels, height, width, generator=generator) * 4).to(dtype).to(device)

        def reference(logits=logits):
            return decode_scores(resize_bilinear(logits[None].float(), frame)[0], from_logits=True)

        def fused(logits=logits):
            return decode_logits(logits, frame)

        fns = {"interpolate + decode_scores": reference, "decode_logits": fused}
        ms = medians(device, fns, repeats)
        expected, got = reference()[0], fused()[0]
        agreement = (expected == got).float().mean().item()
        for name, fn in fns.items():
            rows.append(
                {
                    "device": device.type,
                    "logits": f"{channels}x{height}x{width} {str(dtype).removeprefix('torch.')}",
                    "method": name,
                    "median_ms": ms[name],
                    "peak_mib": peak_mib(device, fn),
                    "labels_equal": agreement if name == "decode_logits" else 1.0,
                }
            )
    return rows


def frame_rows(device: torch.device, repeats: int, scale: int = 1) -> list[dict]:
    """Decision + colour + statistics of one 2048x1024 frame on the device (what the node does per frame)."""
    palette = torch.from_numpy(TRAIN_ID_PALETTE.copy()).to(device)
    frame, rows = scaled_frame(scale), []
    for channels, height, width in scaled_logit_shapes(scale):
        generator = torch.Generator().manual_seed(channels)
        logits = (torch.randn(channels, height, width, generator=generator) * 4).to(device)

        def with_op(logits=logits):
            labels, confidence = decode_logits(logits, frame)
            color = palette[labels.long()]
            counts, sums = tensor_label_histogram(labels, confidence)
            return color, counts, sums

        def with_bincount(logits=logits):  # the statistics as node/statistics.py counts them today
            labels, confidence = decode_logits(logits, frame)
            color = palette[labels.long()]
            flat = labels.reshape(-1).long()
            counts = torch.bincount(flat, minlength=256)
            sums = torch.bincount(flat, weights=confidence.reshape(-1).double(), minlength=256)
            return color, counts, sums

        def with_op_stats_on_host(logits=logits):
            color, counts, sums = with_op(logits)
            return color, counts.cpu(), sums.cpu()

        fns = {
            "decision + colour + statistics (histogram op)": with_op,
            "decision + colour + statistics (torch.bincount)": with_bincount,
            "the same, statistics copied to the host": with_op_stats_on_host,
        }
        ms = medians(device, fns, repeats)
        for name, fn in fns.items():
            rows.append(
                {
                    "device": device.type,
                    "logits": f"{channels}x{height}x{width} float32",
                    "method": name,
                    "median_ms": ms[name],
                    "peak_mib": peak_mib(device, fn),
                    "labels_equal": None,
                }
            )
    return rows


def scaled_frame(scale: int) -> tuple[int, int]:
    return FRAME[0] // scale, FRAME[1] // scale


def scaled_logit_shapes(scale: int) -> list[tuple[int, int, int]]:
    return [(channels, height // scale, width // scale) for channels, height, width in LOGIT_SHAPES]


def table(rows: list[dict]) -> str:
    lines = ["| device | logits | method | median ms | peak MiB | labels equal |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        peak = "" if r["peak_mib"] is None else f"{r['peak_mib']:.1f}"
        equal = "" if r["labels_equal"] is None else f"{100 * r['labels_equal']:.4f} %"
        lines.append(f"| {r['device']} | {r['logits']} | {r['method']} | {r['median_ms']:.3f} | {peak} | {equal} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per method (default: CPU 3, CUDA 50)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--scale", type=int, default=1, help="frame and logits divided by this (dry runs: 8)")
    args = parser.parse_args(argv)
    if args.scale < 1 or 128 % args.scale:
        parser.error("--scale must divide 128 (the smallest logits' height)")
    frame = scaled_frame(args.scale)
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            print("error: no CUDA device", file=sys.stderr)
            return 2
    rows, names = [], {}
    for device in devices:
        names[device.type] = device_name(device)
        op = OP_NAME if device.type == "cpu" else CUDA_OP_NAME
        module = compiled.load(op)
        print(
            f"{device.type}: {names[device.type]}; compiled op {op}: "
            f"{'loaded' if module is not None else compiled.unavailable_reason(op)}",
            flush=True,
        )
        repeats = args.repeats or (3 if device.type == "cpu" else 50)
        with torch.inference_mode():
            rows += decision_rows(device, repeats, torch.float32, args.scale)
            if device.type == "cuda":
                rows += decision_rows(device, repeats, torch.bfloat16, args.scale)
                rows += frame_rows(device, repeats, args.scale)
    print(f"\nDecision of a {frame[1]}x{frame[0]} frame ({'; '.join(f'{k}: {v}' for k, v in names.items())})\n")
    print(table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"frame": frame, "devices": names, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
