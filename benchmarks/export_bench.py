"""ONNX Runtime (CPU) latency of the plugin-free export next to our PyTorch CPU forward, same model, same size.

    .venv/bin/python benchmarks/export_bench.py --models t,segformer-l --sizes 256x512,512x1024 --repeats 5

Random weights (the latency does not depend on the values), batch 1, fp32. Both sides compute the same graph
(``export.onnx_export.ExportGraph``: head logits resized to the input, the 19 class logits out): PyTorch in
inference mode with the DCNv3 core it picks by itself (the compiled CPU op where it loads), ONNX Runtime on the
``--dcnv3 gridsample`` file with its default CPU settings (all graph optimisations, one intra-op thread per
core). Each figure is the median of --repeats runs after one warm-up run, on the same fresh random input; the two
are timed in turn within each repeat, so load from other processes falls on both alike.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import onnxruntime
import torch
from bench_common import device_name, interleaved_medians_ms, model_names

from cityscapes_seg_ros import build_segmentor
from cityscapes_seg_ros.export.onnx_export import ExportSettings, export_graph, export_onnx, ort_session
from cityscapes_seg_ros.export.verify import random_input

MODEL_NAMES = model_names(("t", "l"))


def parse_sizes(text: str) -> List[Tuple[int, int]]:
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",")]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="t", help=f"comma-separated, of {', '.join(MODEL_NAMES)}")
    parser.add_argument("--sizes", default="256x512", help="HxW, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{device_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, load average {os.getloadavg()[0]:.1f}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for key in args.models.split(","):
            model = build_segmentor(MODEL_NAMES[key], device="cpu")
            for height, width in parse_sizes(args.sizes):
                settings = ExportSettings(height, width, output="logits")
                path = Path(folder) / f"{key}_{height}x{width}.onnx"
                start = time.perf_counter()
                export_onnx(model, path, settings, model_name=MODEL_NAMES[key])
                export_s = time.perf_counter() - start
                x = random_input(settings, seed=height + width)
                graph = export_graph(model, settings)
                tensor = torch.from_numpy(x)

                def torch_forward() -> None:
                    with torch.inference_mode():
                        graph(tensor)

                session = ort_session(path)
                onnx_out = session.run(None, {"input": x})[0]
                with torch.inference_mode():
                    torch_out = graph(tensor).numpy()
                error = float(np.linalg.norm(onnx_out - torch_out) / np.linalg.norm(torch_out))
                torch_ms, onnx_ms = interleaved_medians_ms(
                    [torch_forward, lambda: session.run(None, {"input": x})], args.repeats
                )
                rows.append((key, f"{height}x{width}", torch_ms, onnx_ms, error, export_s))
    print("\n| model | size | PyTorch CPU, ms | ONNX Runtime CPU, ms | ORT / PyTorch | logits rel. error | export, s |")
    print("|---|---|---|---|---|---|---|")
    for key, size, torch_ms, onnx_ms, error, export_s in rows:
        print(
            f"| {key} | {size} | {torch_ms:.0f} | {onnx_ms:.0f} | {onnx_ms / torch_ms:.2f}× | {error:.1e} | "
            f"{export_s:.0f} |"
        )


if __name__ == "__main__":
    main()
