"""Pure-PyTorch DCNv3 core vs the official ``dcnv3_core_pytorch``, side by side in one run.

The official core is read from a file of the official repository that you provide (it is not part of this
package): ``segmentation/ops_dcnv3/functions/dcnv3_func.py`` of github:OpenGVLab/InternImage. Its import of
the compiled ``DCNv3`` module is satisfied with an empty stand-in, since only the pure-PyTorch function is
used.

Shapes: the stage shapes of InternImage-T and -L for a 1024x2048 input, batch 1 (see dcnv3_bench.py),
fp32 forward under inference mode; offsets N(0, 2^2) so that some points land outside the image. For each
shape both cores run alternately (median of --reps calls after a warm-up), and the outputs are compared
(relative error, the official output as reference).

    .venv/bin/python benchmarks/dcnv3_core_bench.py --official /path/to/dcnv3_func.py [--models T,L]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import device_name, interleaved_medians_ms  # noqa: E402
from dcnv3_bench import MODELS, STAGES  # noqa: E402

from cityscapes_seg_ros.dcnv3.reference import dcnv3_core_torch  # noqa: E402


def load_official_core(path: Path):
    if not path.is_file():
        raise SystemExit(
            f"error: {path} not found (segmentation/ops_dcnv3/functions/dcnv3_func.py of the official repo)"
        )
    sys.modules.setdefault("DCNv3", types.ModuleType("DCNv3"))  # the compiled op, unused here
    spec = importlib.util.spec_from_file_location("official_dcnv3_func", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dcnv3_core_pytorch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", type=Path, required=True, help="path of the official dcnv3_func.py")
    p.add_argument("--models", default="T,L")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    official = load_official_core(args.official)

    print(f"torch {torch.__version__}, {device_name(torch.device('cpu'))}, fp32, batch 1, 1024x2048 input\n")
    print("| model | stage | H x W | C | G | official ms | ours ms | speedup | rel. error |")
    print("|---|---|---|---|---|---|---|---|---|")
    total_official = total_ours = 0.0
    for model in args.models.split(","):
        spec = MODELS[model]
        for i, ((h, w), c, g) in enumerate(zip(STAGES, spec["channels"], spec["groups"])):
            gen = torch.Generator().manual_seed(100 + i)
            inp = torch.randn(1, h, w, c, generator=gen)
            off = torch.randn(1, h, w, g * 18, generator=gen) * 2
            msk = torch.softmax(torch.randn(1, h, w, g, 9, generator=gen), -1).reshape(1, h, w, g * 9)
            cargs = (3, 3, 1, 1, 1, 1, 1, 1, g, c // g, spec["offset_scale"])
            with torch.inference_mode():
                ref = official(inp, off, msk, *cargs)
                err = ((dcnv3_core_torch(inp, off, msk, *cargs) - ref).norm() / ref.norm()).item()
                t_official, t_ours = interleaved_medians_ms(
                    [lambda: official(inp, off, msk, *cargs), lambda: dcnv3_core_torch(inp, off, msk, *cargs)],
                    args.reps,
                )
            total_official += t_official
            total_ours += t_ours
            print(
                f"| {model} | {i + 1} | {h}x{w} | {c} | {g} | {t_official:.1f} | {t_ours:.1f} | "
                f"{t_official / t_ours:.2f}x | {err:.1e} |",
                flush=True,
            )
    print(
        f"\nall shapes: official {total_official:.0f} ms, ours {total_ours:.0f} ms, "
        f"ours / official = {total_ours / total_official:.2f}"
    )


if __name__ == "__main__":
    main()
