"""DCNv3 core benchmark: every available backend at the stage shapes of InternImage-T and -L.

Backends: the compiled CPU op, the compiled CUDA op (when a GPU is present), and the pure-PyTorch core
(``cityscapes_seg_ros.ops.dcnv3_torch.dcnv3_core_torch``) on each device.

Shapes: a 1024x2048 input (batch 1), stage sizes 256x512, 128x256, 64x128, 32x64; T: C = 64..512,
G = 4..32, offset_scale 1; L: C = 160..1280, G = 10..80, offset_scale 2; 3x3 kernel, stride 1, pad 1.
For each: ms per call (median), GB/s achieved for the compulsory traffic (input, offset, mask read once,
output written once) and its fraction of the device's copy bandwidth (the memory roofline, measured here
with a large tensor copy), and the speedup over the pure-PyTorch core on the same device.

    .venv/bin/python benchmarks/dcnv3_bench.py                      # all devices, fp32
    .venv/bin/python benchmarks/dcnv3_bench.py --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cityscapes_seg_ros.ops.dcnv3_compiled import available_backends, dcnv3_forward  # noqa: E402
from cityscapes_seg_ros.ops.dcnv3_torch import dcnv3_core_torch  # noqa: E402

STAGES = ((256, 512), (128, 256), (64, 128), (32, 64))
MODELS = {
    "T": dict(channels=(64, 128, 256, 512), groups=(4, 8, 16, 32), offset_scale=1.0),
    "L": dict(channels=(160, 320, 640, 1280), groups=(10, 20, 40, 80), offset_scale=2.0),
}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn, device, reps, min_time=0.0):
    fn()  # warm-up
    sync(device)
    times = []
    t_start = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - t_start < min_time and len(times) < 50):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def copy_bandwidth(device, nbytes=256 << 20):
    """GB/s of a large tensor copy (read + write): the memory roofline for a streaming kernel."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = timeit(lambda: dst.copy_(src), device, 5)
    return 2 * nbytes / ms / 1e6


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip() + f" ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="all", help="cpu, cuda or all (default)")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--models", default="T,L")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--torch-reps", type=int, default=1, help="repetitions of the (slow) pure-PyTorch core")
    p.add_argument("--no-torch", action="store_true", help="skip the pure-PyTorch core")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]

    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    t = time.perf_counter()
    backends = available_backends()
    print(f"compiled backends: {backends} (load/build {time.perf_counter() - t:.1f} s)")
    print(f"torch {torch.__version__}, dtype {args.dtype}, batch 1, 1024x2048 input\n")

    for device in devices:
        bw = copy_bandwidth(device)
        print(f"## {device.type}: {device_name(device)}; copy bandwidth (roofline) {bw:.1f} GB/s\n")
        print("| model | stage | H x W | C | G | compiled ms | GB/s | % roofline | torch core ms | speedup |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for model in args.models.split(","):
            spec = MODELS[model]
            for i, ((h, w), c, g) in enumerate(zip(STAGES, spec["channels"], spec["groups"])):
                gen = torch.Generator().manual_seed(i)
                k = 9
                inp = torch.randn(1, h, w, c, generator=gen).to(device, dtype)
                off = torch.randn(1, h, w, g * k * 2, generator=gen).to(device, dtype)
                msk = torch.softmax(torch.randn(1, h, w, g, k, generator=gen), -1).reshape(1, h, w, g * k)
                msk = msk.to(device, dtype)
                cargs = (3, 3, 1, 1, 1, 1, 1, 1, g, c // g, spec["offset_scale"])
                nbytes = (2 * inp.numel() + off.numel() + msk.numel()) * inp.element_size()
                with torch.inference_mode():
                    ms = gbs = None
                    if device.type in backends:
                        out = torch.empty_like(inp)
                        ms = timeit(lambda: dcnv3_forward(inp, off, msk, *cargs, out=out), device, args.reps)
                        gbs = nbytes / ms / 1e6
                    tms = None
                    if not args.no_torch:
                        tms = timeit(lambda: dcnv3_core_torch(inp, off, msk, *cargs), device, args.torch_reps)
                fmt = lambda v, f: "–" if v is None else format(v, f)  # noqa: E731
                speed = "–" if ms is None or tms is None else f"{tms / ms:.1f}x"
                print(f"| {model} | {i + 1} | {h}x{w} | {c} | {g} | {fmt(ms, '.1f')} | {fmt(gbs, '.2f')} | "
                      f"{fmt(None if gbs is None else 100 * gbs / bw, '.0f')} | {fmt(tms, '.1f')} | {speed} |",
                      flush=True)  # fmt: skip
        print()


if __name__ == "__main__":
    main()
