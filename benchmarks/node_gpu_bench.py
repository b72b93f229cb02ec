"""What a frame costs the node through its ROS-free pipeline on the device: N cameras' frames of one size
through ``FrameProcessor`` (preprocess on the device, network, class decision, colour, overlay, statistics,
results copied to host memory), as the node's worker runs them (``batch_groups`` then ``process_batch``).

Side by side in one run: CUDA graphs off / on (``cuda_graphs``) and batch 1 (each frame alone) / batch N (the N
cameras' frames in one forward). Per case: the median over ``--runs`` rounds of N frames after ``--warmup`` rounds
(graph captures happen there), as ms per frame and frames per second, and the node's own per-frame timings.
Random weights (``--checkpoint none``) unless a checkpoint is given: the timing does not depend on them.

    python benchmarks/node_gpu_bench.py --device cuda [--cameras 4] [--precision bf16] [--json out.json]
    python benchmarks/node_gpu_bench.py --device cpu --size 64x128 --model tiny.yaml --runs 2   # dry run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics as stats
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from cityscapes_seg_ros.node.params import PARAMETERS, NodeSettings
from cityscapes_seg_ros.node.pipeline import DevicePredictor, FrameProcessor, batch_groups
from cityscapes_seg_ros.segmenter.options import DEFAULT_MODEL, build_predictor

OUTPUTS = ("labels", "color", "overlay", "statistics")  # the node's default outputs (camera_info costs nothing)


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH like 1024x2048, got {text!r}") from None
    return height, width


def node_settings(args: argparse.Namespace, batch: int, graphs: bool) -> NodeSettings:
    height, width = args.size
    values: Dict[str, Any] = {spec.name: spec.default for spec in PARAMETERS}
    values.update(
        model=args.model,
        checkpoint=args.checkpoint,
        device=args.device,
        precision=args.precision,
        dcnv3_backend=args.dcnv3_backend,
        inference_size=list(args.inference_size or (max(height, width), min(height, width))),
        max_batch_size=batch,
        cuda_graphs=graphs,
        outputs=list(OUTPUTS),
        skip_unsubscribed=False,
    )
    return NodeSettings.from_values(values)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(processor: FrameProcessor, images: List[np.ndarray], settings: NodeSettings, args) -> Dict[str, Any]:
    """Rounds of one frame per camera through the pipeline as the node's worker takes them."""
    wanted = set(OUTPUTS)
    groups = batch_groups([image.shape for image in images], settings)
    round_ms: List[float] = []
    timings: Dict[str, List[float]] = {"preprocess": [], "inference": [], "postprocess": []}
    for index in range(args.warmup + args.runs):
        synchronize(processor.device)
        start = time.perf_counter()
        results = []
        for group in groups:
            results += processor.process_batch([images[i] for i in group], settings, [wanted] * len(group))
        synchronize(processor.device)
        if index >= args.warmup:
            round_ms.append((time.perf_counter() - start) * 1e3)
            for result in results:
                for stage in timings:
                    timings[stage].append(result.timings_ms[stage])
    median = stats.median(round_ms)
    graphs = processor.predictor.graph_forward
    return {
        "cuda_graphs": graphs.enabled,
        "graphs_held": graphs.held,
        "batch": max(len(group) for group in groups),
        "round_ms": median,
        "ms_per_frame": median / len(images),
        "frames_per_s": len(images) * 1e3 / median,
        **{f"{stage}_ms": stats.mean(values) for stage, values in timings.items()},
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a model name or an mmseg config file")
    parser.add_argument("--checkpoint", default="none", help="none (random weights, default), hub, a .pth, hf://...")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=parse_size, default=(1024, 2048), help="camera frames, HEIGHTxWIDTH")
    parser.add_argument(
        "--inference-size",
        type=parse_size,
        default=None,
        help="LONGxSHORT bound of the network input (default: the frame's own size)",
    )
    parser.add_argument("--cameras", type=int, default=4, help="frames per round, one per camera (batch N)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--dcnv3-backend", default="auto", choices=("auto", "torch"))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--cameras and --runs must be at least 1, --warmup at least 0")
    if args.cameras > 16:
        parser.error("--cameras: the node batches at most 16 frames (max_batch_size)")

    first = node_settings(args, 1, True)
    predictor = build_predictor(first.model_options(), predictor_class=DevicePredictor)
    processor = FrameProcessor(predictor)
    device = predictor.device
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*args.size, 3), dtype=np.uint8) for _ in range(args.cameras)]
    batches = sorted({1, args.cameras})
    graph_modes = (False, True) if device.type == "cuda" else (False,)
    rows = []
    for graphs in graph_modes:
        for batch in batches:
            rows.append(run_case(processor, images, node_settings(args, batch, graphs), args))

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
    print(
        f"{Path(args.model).stem} ({'random weights' if args.checkpoint == 'none' else args.checkpoint}), "
        f"{args.cameras} camera(s) of {args.size[1]}x{args.size[0]}, {args.precision}{' (cuDNN TF32 on)' if tf32 else ''}, "
        f"DCNv3 {args.dcnv3_backend}, outputs {', '.join(OUTPUTS)}; median of {args.runs} rounds after {args.warmup}; "
        f"device {device} ({gpu}); {cpu}; torch {torch.__version__}, Python {platform.python_version()}"
    )
    base = rows[0]["ms_per_frame"]
    print(
        "| CUDA graphs | batch | ms per frame | frames/s | vs eager batch 1 | preprocess ms | inference ms | postprocess ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        graphs = "off" if device.type == "cuda" else "n/a (CPU)"
        if row["cuda_graphs"]:  # a failed capture runs eagerly: then no graph is held
            graphs = f"on ({row['graphs_held']} held)" if row["graphs_held"] else "on, capture FAILED (eager)"
        print(
            f"| {graphs} | {row['batch']} | {row['ms_per_frame']:.2f} | {row['frames_per_s']:.1f} | "
            f"{base / row['ms_per_frame']:.2f}x | {row['preprocess_ms']:.2f} | {row['inference_ms']:.2f} | "
            f"{row['postprocess_ms']:.2f} |"
        )
    print(
        "(inference ms: per frame, the wall time of the forward and decision its frame went through, so a batch's "
        "frames each show the whole batch's)"
    )
    if args.json is not None:
        record = {
            "bench": "node_gpu_bench",
            "model": args.model,
            "checkpoint": args.checkpoint,
            "device": str(device),
            "gpu": gpu,
            "cpu": cpu,
            "size": list(args.size),
            "cameras": args.cameras,
            "precision": args.precision,
            "dcnv3_backend": args.dcnv3_backend,
            "cudnn_tf32": bool(tf32),
            "runs": args.runs,
            "warmup": args.warmup,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
