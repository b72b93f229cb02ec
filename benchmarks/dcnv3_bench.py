"""DCNv3 core benchmark: every available backend at the stage shapes of InternImage-T and -L.

Backends: the compiled CPU op, the compiled CUDA op (when a GPU is present), the pure-PyTorch core
(``cityscapes_seg_ros.dcnv3.reference.dcnv3_core_torch``) on each device, and, with ``--official DIR``, the
official ``ops_dcnv3`` CUDA extension built in ``DIR`` (``python setup.py build_ext --inplace`` in InternImage's
``segmentation/ops_dcnv3``; its module is ``DCNv3``), called as the official ``DCNv3Function`` calls it
(``im2col_step`` 256). The official op has no bf16 kernel.

Shapes: a 1024x2048 input (batch 1), stage sizes 256x512, 128x256, 64x128, 32x64; T: C = 64..512,
G = 4..32, offset_scale 1; L: C = 160..1280, G = 10..80, offset_scale 2; 3x3 kernel, stride 1, pad 1.
Inputs are fresh random tensors (offsets ~ N(0, 1) pixels, mask a softmax per group).
For each: ms per call, GB/s achieved for the compulsory traffic (input, offset, mask read once, output written
once) and its fraction of the device's copy bandwidth (the memory roofline, measured here with a large tensor
copy), the speedup over the pure-PyTorch core and over the official op, and the relative error of the official
op's output against ours (``|ours - official| / |official|``, Frobenius norms).

With ``--cuda-kernels baseline,smem,regs,tile,tile_regs`` (CUDA) each named forward kernel of the CUDA op (see
``kernels/dcnv3/dcnv3_cuda.cu``; the op's ``forward_kernels()``) is timed in the same row, side by side: its ms,
GB/s, and the relative error of its output against the default kernel's ("ours").

Timing: a captured loop of calls, the median of 5 timings of it after a warm-up. On CUDA the loop (enough calls
for ~20 ms) is one CUDA graph, replayed between CUDA events: the Python around the op (argument checks ~14 us a
call) runs once at capture, so small stages time the kernel, not the interpreter; an op that cannot be captured is
timed as a plain loop and its row says so (``timing``). On the CPU the same code with a plain loop, the median of
``--reps`` calls (wall clock). Each CUDA kernel's row records the kernel requested and the kernel that ran (``used``): a
gather kernel leaves shapes or alignments it cannot take to ``baseline``, and the table marks it.

    .venv/bin/python benchmarks/dcnv3_bench.py                      # all devices, fp32
    .venv/bin/python benchmarks/dcnv3_bench.py --device cuda --dtype fp16 --official ops_dcnv3 --json out.json
    .venv/bin/python benchmarks/dcnv3_bench.py --device cuda --no-torch --cuda-kernels baseline,smem,regs,tile,tile_regs
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import device_name  # noqa: E402

from cityscapes_seg_ros.dcnv3.compiled import available_backends, dcnv3_forward, load_dcnv3_op  # noqa: E402
from cityscapes_seg_ros.dcnv3.reference import dcnv3_core_torch  # noqa: E402

STAGES = ((256, 512), (128, 256), (64, 128), (32, 64))
MODELS = {
    "T": dict(channels=(64, 128, 256, 512), groups=(4, 8, 16, 32), offset_scale=1.0),
    "L": dict(channels=(160, 320, 640, 1280), groups=(10, 20, 40, 80), offset_scale=2.0),
}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OFFICIAL_IM2COL_STEP = 256  # what the official DCNv3 module passes


def captured_loop(fn: Callable[[], object], calls: int, device: torch.device) -> tuple[Callable[[], None], str]:
    """``calls`` calls of ``fn`` as one callable, and how: on CUDA one CUDA graph of them (the Python around the
    op, its argument checks included, runs once at capture and not in the timed replays), else a plain loop."""
    if device.type == "cuda":
        try:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                fn()  # warm-up outside the capture (lazy initialisation, workspace allocation)
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(calls):
                    fn()
            return graph.replay, "CUDA graph"
        except RuntimeError as exc:  # an op that cannot be captured is timed as a loop, and the row says so
            print(f"(not capturable, timed as a loop of calls: {str(exc).splitlines()[0][:120]})")
            torch.cuda.synchronize(device)

    def loop() -> None:
        for _ in range(calls):
            fn()

    return loop, "loop"


def timeit_ms(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    """Milliseconds per call of ``fn`` (see the module doc for the method)."""
    return timed(fn, device, reps)[0]


def timed(fn: Callable[[], object], device: torch.device, reps: int) -> tuple[float, str]:
    """Milliseconds per call of ``fn`` and the method: the median of 5 timings of a captured loop of calls
    (CUDA: enough calls for ~20 ms, timed with CUDA events; CPU: the median of ``reps`` calls, wall clock)."""
    fn()  # warm-up
    if device.type != "cuda":
        loop, method = captured_loop(fn, 1, device)
        times = []
        for _ in range(max(1, reps)):
            start = time.perf_counter()
            loop()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3, method
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    calls = max(1, min(1000, int(20.0 / max(start.elapsed_time(end), 1e-3))))
    loop, method = captured_loop(fn, calls, device)
    loop()  # the first replay uploads the graph
    loops = []
    for _ in range(5):
        start.record()
        loop()
        end.record()
        end.synchronize()
        loops.append(start.elapsed_time(end) / calls)
    return statistics.median(loops), method


def copy_bandwidth(device: torch.device, nbytes: int = 256 << 20) -> float:
    """GB/s of a large tensor copy (read + write): the memory roofline for a streaming kernel."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = timeit_ms(lambda: dst.copy_(src), device, 5)
    return 2 * nbytes / ms / 1e6


def load_official(folder: Optional[Path]):
    """The official ``DCNv3`` extension module built in ``folder`` (None without a folder)."""
    if folder is None:
        return None
    sys.path.insert(0, str(folder.resolve()))
    try:
        return importlib.import_module("DCNv3")
    except ImportError as exc:
        print(f"official op not importable from {folder}: {exc}")
        return None


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double()
    return float((out.double() - ref).norm() / ref.norm().clamp_min(1e-30))


def fmt(value: Optional[float], spec: str) -> str:
    return "–" if value is None else format(value, spec)


def time_cuda_kernels(names: list[str], call: Callable[[], torch.Tensor], device, args, nbytes: int) -> dict:
    """ms, GB/s, relative error against the default kernel's output, and the kernel that ran (``used``: a gather
    kernel that cannot take the shapes or alignment leaves the call to ``baseline``) of each named kernel."""
    module = load_dcnv3_op("cuda")
    default = module.forward_kernel()
    expected = call().clone()
    figures = {}
    try:
        for name in names:
            module.set_forward_kernel(name)
            ms, method = timed(call, device, args.reps)
            rel_error = relative_error(call(), expected)
            used = kernel_used(module)
            figures[name] = dict(ms=ms, gbs=nbytes / ms / 1e6, rel_error=rel_error, requested=name, used=used)
            figures[name]["timing"] = method
    finally:
        module.set_forward_kernel(default)
    return figures


def kernel_used(module) -> Optional[str]:
    """The forward kernel the op's latest call ran (None from a build older than ``last_forward_kernel``)."""
    return module.last_forward_kernel() if hasattr(module, "last_forward_kernel") else None


def bench_stage(device, dtype, spec, stage, backends, official, args) -> dict:
    (h, w), c, g = STAGES[stage], spec["channels"][stage], spec["groups"][stage]
    gen = torch.Generator().manual_seed(1000 * stage + c)
    k = 9
    inp = torch.randn(1, h, w, c, generator=gen).to(device, dtype)
    off = torch.randn(1, h, w, g * k * 2, generator=gen).to(device, dtype)
    msk = torch.softmax(torch.randn(1, h, w, g, k, generator=gen), -1).reshape(1, h, w, g * k).to(device, dtype)
    cargs = (3, 3, 1, 1, 1, 1, 1, 1, g, c // g, spec["offset_scale"])
    nbytes = (2 * inp.numel() + off.numel() + msk.numel()) * inp.element_size()
    row = dict(stage=stage + 1, h=h, w=w, channels=c, groups=g, bytes=nbytes)
    with torch.inference_mode():
        out = torch.empty_like(inp)
        if device.type in backends:
            row["ours_ms"], row["timing"] = timed(
                lambda: dcnv3_forward(inp, off, msk, *cargs, out=out), device, args.reps
            )
            row["ours_gbs"] = nbytes / row["ours_ms"] / 1e6
            if device.type == "cuda":
                dcnv3_forward(inp, off, msk, *cargs, out=out)
                cuda_op = load_dcnv3_op("cuda")
                row["ours_kernel"] = dict(requested=cuda_op.forward_kernel(), used=kernel_used(cuda_op))
            if device.type == "cuda" and args.cuda_kernels:
                call = lambda: dcnv3_forward(inp, off, msk, *cargs, out=out)  # noqa: E731
                row["cuda_kernels"] = time_cuda_kernels(args.cuda_kernels, call, device, args, nbytes)
        if not args.no_torch:
            row["torch_ms"] = timeit_ms(lambda: dcnv3_core_torch(inp, off, msk, *cargs), device, args.torch_reps)
        if official is not None and device.type == "cuda" and dtype != torch.bfloat16:
            call = lambda: official.dcnv3_forward(inp, off, msk, *cargs, OFFICIAL_IM2COL_STEP)  # noqa: E731
            row["official_ms"], row["official_timing"] = timed(call, device, args.reps)
            if "ours_ms" in row:
                row["official_rel_error"] = relative_error(out, call())
    return row


def kernel_cells(row: dict, kernels: list[str], roofline_gbs: float) -> str:
    cells = ""
    for name in kernels:
        k = row.get("cuda_kernels", {}).get(name, {})
        gbs = k.get("gbs")
        ran = f" (ran {k['used']})" if k.get("used") not in (None, name) else ""  # a gather kernel fell back
        cells += (
            f" {fmt(k.get('ms'), '.3f')}{ran} | {fmt(gbs, '.0f')} |"
            f" {fmt(None if gbs is None else 100 * gbs / roofline_gbs, '.0f')} | {fmt(k.get('rel_error'), '.1e')} |"
        )
    return cells


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="all", help="cpu, cuda or all (default)")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--models", default="T,L")
    p.add_argument("--reps", type=int, default=3, help="CPU: calls per figure")
    p.add_argument("--torch-reps", type=int, default=1, help="repetitions of the (slow) pure-PyTorch core")
    p.add_argument("--no-torch", action="store_true", help="skip the pure-PyTorch core")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    p.add_argument("--official", type=Path, default=None, help="folder holding the built official DCNv3 module")
    p.add_argument("--stages", type=int, default=4, help="first N stages only (dry runs)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--cuda-kernels", default="", help="CUDA: also time these forward kernels, e.g. baseline,smem,tile")
    args = p.parse_args(argv)
    args.cuda_kernels = [k for k in args.cuda_kernels.split(",") if k]
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
    official = load_official(args.official)
    print(
        f"compiled backends: {backends} (load/build {time.perf_counter() - t:.1f} s); official op: "
        f"{'loaded' if official is not None else 'not used'}"
    )
    print(f"torch {torch.__version__}, dtype {args.dtype}, batch 1, 1024x2048 input")
    cuda_op = load_dcnv3_op("cuda") if "cuda" in backends else None
    if cuda_op is not None:
        print(f"CUDA forward kernel (ours): {cuda_op.forward_kernel()}; all: {', '.join(cuda_op.forward_kernels())}")
        unknown = [k for k in args.cuda_kernels if k not in cuda_op.forward_kernels()]
        if unknown:
            p.error(f"--cuda-kernels: unknown {', '.join(unknown)} (known: {', '.join(cuda_op.forward_kernels())})")
    print()

    results = dict(torch=torch.__version__, dtype=args.dtype, devices=[])
    for device in devices:
        bw = copy_bandwidth(device)
        result = dict(device=device.type, name=device_name(device), copy_gbs=bw, rows=[])
        results["devices"].append(result)
        print(f"## {device.type}: {result['name']}; copy bandwidth (roofline) {bw:.1f} GB/s\n")
        kernels = args.cuda_kernels if device.type == "cuda" and cuda_op is not None else []
        kernel_heads = "".join(f" {k} ms | {k} GB/s | {k} % roofline | {k} rel. err. |" for k in kernels)
        print(
            "| model | stage | H x W | C | G | ours ms | GB/s | % roofline | torch core ms | speedup vs torch core | "
            "official ms | speedup vs official | rel. err. vs official |" + kernel_heads
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|---|---|---|" * len(kernels))
        for model in args.models.split(","):
            for stage in range(min(args.stages, len(STAGES))):
                row = bench_stage(device, dtype, MODELS[model], stage, backends, official, args)
                row["model"] = model
                result["rows"].append(row)
                ours, gbs = row.get("ours_ms"), row.get("ours_gbs")
                vs_torch = None if ours is None or "torch_ms" not in row else row["torch_ms"] / ours
                vs_official = None if ours is None or "official_ms" not in row else row["official_ms"] / ours
                print(
                    f"| {model} | {row['stage']} | {row['h']}x{row['w']} | {row['channels']} | {row['groups']} | "
                    f"{fmt(ours, '.3f')} | {fmt(gbs, '.0f')} | {fmt(None if gbs is None else 100 * gbs / bw, '.0f')}"
                    f" | {fmt(row.get('torch_ms'), '.3f')} | {fmt(vs_torch, '.1f')} | "
                    f"{fmt(row.get('official_ms'), '.3f')} | {fmt(vs_official, '.2f')} | "
                    f"{fmt(row.get('official_rel_error'), '.1e')} |" + kernel_cells(row, kernels, bw),
                    flush=True,
                )
        print()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
