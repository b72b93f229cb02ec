"""CPU (or GPU) latency of whole segmentors, split into backbone, DCNv3 core and decode head.

    .venv/bin/python benchmarks/model_bench.py --models t,l --sizes 256x512,512x1024 --backends cpu,torch

Random weights (the latency does not depend on the values), batch 1, fp32, inference mode. Each figure is the
median of --repeats runs after one warm-up run. The DCNv3 core share is measured by timing every call of the
core inside the same runs. ``--backends`` runs each model once per DCNv3 backend (``cityscapes_seg_ros.ops``):
auto, cpu / cuda (the compiled op) or torch (the pure-PyTorch core).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

import torch
from bench_common import model_names

import cityscapes_seg_ros.models.dcnv3 as dcnv3_module
from cityscapes_seg_ros import build_segmentor

MODEL_NAMES = model_names(("t", "s", "b", "l", "xl"))


def parse_sizes(text: str) -> List[Tuple[int, int]]:
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",")]  # type: ignore[misc]


@contextmanager
def timed_core(totals: List[float]) -> Iterator[None]:
    """Wrap the DCNv3 core called by the module so its time is summed into ``totals``."""
    original = dcnv3_module.ops.dcnv3

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        totals.append(time.perf_counter() - start)
        return out

    dcnv3_module.ops.dcnv3 = timed
    try:
        yield
    finally:
        dcnv3_module.ops.dcnv3 = original


def bench(model: torch.nn.Module, size: Tuple[int, int], repeats: int, device: torch.device) -> Dict[str, float]:
    x = torch.randn(1, 3, *size, device=device)
    runs: Dict[str, List[float]] = {"total": [], "backbone": [], "head": [], "dcnv3": []}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(repeats):
            core: List[float] = []
            with timed_core(core):
                sync()
                start = time.perf_counter()
                features = model.backbone(x)
                sync()
                mid = time.perf_counter()
                model.decode_head(features)
                sync()
                end = time.perf_counter()
            runs["total"].append(end - start)
            runs["backbone"].append(mid - start)
            runs["head"].append(end - mid)
            runs["dcnv3"].append(sum(core))
    return {k: statistics.median(v) * 1000 for k, v in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="t", help=f"comma list of {', '.join(MODEL_NAMES)}")
    parser.add_argument("--sizes", default="256x512,512x1024,1024x2048", help="HxW input sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backends", default="auto", help="comma list of DCNv3 backends: auto, cpu, cuda, torch")
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {args.device}\n"
    )
    print("| model | input HxW | DCNv3 backend | total ms | backbone ms | of which DCNv3 core ms | decode head ms |")
    print("|---|---|---|---|---|---|---|")
    for key in args.models.split(","):
        model = build_segmentor(MODEL_NAMES[key], device=args.device)
        device = next(model.parameters()).device
        for size in parse_sizes(args.sizes):
            for backend in args.backends.split(","):
                model.set_dcnv3_backend(backend)
                r = bench(model, size, args.repeats, device)
                print(
                    f"| {key} | {size[0]}x{size[1]} | {backend} | {r['total']:.0f} | {r['backbone']:.0f} | "
                    f"{r['dcnv3']:.0f} | {r['head']:.0f} |",
                    flush=True,
                )
        del model


if __name__ == "__main__":
    main()
