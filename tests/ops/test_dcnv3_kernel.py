"""The compiled DCNv3 op (kernels/dcnv3 via cityscapes_seg_ros.dcnv3.compiled).

Checked against a naive float64 reference written here (gather-based, independent of grid_sample), and
against the package's pure-PyTorch core ``cityscapes_seg_ros.dcnv3.reference.dcnv3_core_torch`` where it
exists. The CPU op is built once per test session (the first JIT build takes about a minute; later
sessions load the cached build). CUDA: an nvcc compile-only check here, numeric checks where a GPU is.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.dcnv3_reference import (
    GENERAL_CASES,
    MODEL_CASES,
    kernel_args,
    make_inputs,
    out_size,
    reference_dcnv3,
    rel_err,
)

from cityscapes_seg_ros.dcnv3 import compiled as ext
from cityscapes_seg_ros.dcnv3.reference import dcnv3_core_torch
from cityscapes_seg_ros.ops import compiled
from cityscapes_seg_ros.ops.op_records import OPS, SWITCH_ENV, read_switch

HAS_CUDA = torch.cuda.is_available()


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cpu_op():
    switch = read_switch()
    if switch.mode == "off":
        pytest.skip(f"compiled ops switched off: {switch.setting}")
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler on PATH: the compiled DCNv3 CPU op cannot be built")
    module = ext.load_dcnv3_op("cpu")
    assert module is not None, f"CPU op build failed: {ext.dcnv3_op_error('cpu')}"
    return module


@pytest.fixture(scope="module")
def cuda_op():
    if not HAS_CUDA:
        pytest.skip("no CUDA device")
    module = ext.load_dcnv3_op("cuda")
    assert module is not None, f"CUDA op build failed: {ext.dcnv3_op_error('cuda')}"
    return module


# the CUDA op's forward kernels (dcnv3_cuda.cu): every CUDA test runs each of them
CUDA_FORWARD_KERNELS = ("baseline", "smem", "regs", "tile", "tile_regs")


@pytest.fixture(params=CUDA_FORWARD_KERNELS)
def cuda_kernel(request, cuda_op):
    """The CUDA op with its forward kernel set to the parameter (restored afterwards)."""
    assert tuple(cuda_op.forward_kernels()) == CUDA_FORWARD_KERNELS  # a new kernel must be added here
    before = cuda_op.forward_kernel()
    cuda_op.set_forward_kernel(request.param)
    assert cuda_op.forward_kernel() == request.param
    yield request.param
    cuda_op.set_forward_kernel(before)


# ------------------------------------------------------------------------------------------ CPU forward


def test_reference_and_op_on_a_hand_case(cpu_op):
    # one pixel, one group, 1x1 kernel: the sample at (x, y) = (0.25, 0.5) of a 2x2 image, mask 0.5
    inp = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64).view(1, 2, 2, 1)
    offset = torch.tensor([0.25, 0.5], dtype=torch.float64).view(1, 1, 1, 2)
    mask = torch.tensor([0.5], dtype=torch.float64).view(1, 1, 1, 1)
    args = (1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1.0)
    for f in (reference_dcnv3, ext.dcnv3_compiled):
        # 1x1 image: only corner (0, 0), weight (1 - 0.5) * (1 - 0.25), is inside
        assert f(inp[:, :1, :1].contiguous(), offset, mask, *args).item() == pytest.approx(0.5 * 0.375)
        big = f(inp, offset.expand(1, 2, 2, 2).contiguous(), mask.expand(1, 2, 2, 1).contiguous(), *args)
        assert big[0, 0, 0, 0].item() == pytest.approx(0.5 * (1 * 0.375 + 2 * 0.125 + 3 * 0.375 + 4 * 0.125))
        assert big[0, 1, 1, 0].item() == pytest.approx(0.5 * 4 * 0.375)  # (1.25, 1.5): one corner inside


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: "N{}_{}x{}_G{}_Cg{}_s{}".format(*c))
def test_cpu_forward_model_shapes(cpu_op, case):
    n, h, w, g, cg, os_ = case
    inp, off, msk = make_inputs(n, h, w, g, cg, offset_std=2.0)
    args = kernel_args(3, 1, 1, 1, g, cg, os_)
    ref = reference_dcnv3(inp, off, msk, *args)
    out64 = ext.dcnv3_compiled(inp, off, msk, *args)
    assert out64.dtype == torch.float64 and out64.shape == ref.shape
    assert rel_err(out64, ref) < 1e-12
    i32, o32, m32 = (t.float() for t in (inp, off, msk))
    ref32 = reference_dcnv3(i32.double(), o32.double(), m32.double(), *args)  # same rounded inputs, in fp64
    out32 = ext.dcnv3_compiled(i32, o32, m32, *args)
    assert out32.dtype == torch.float32
    assert rel_err(out32, ref32) <= 1e-5
    for dt in (torch.float16, torch.bfloat16):
        ih, oh, mh = (t.to(dt) for t in (inp, off, msk))
        refh = reference_dcnv3(ih.double(), oh.double(), mh.double(), *args)
        outh = ext.dcnv3_compiled(ih, oh, mh, *args)
        assert outh.dtype == dt
        assert rel_err(outh, refh) <= 1e-2, dt


@pytest.mark.parametrize("case", GENERAL_CASES, ids=lambda c: "G{3}_Cg{4}_k{5}_s{6}_p{7}_d{8}_os{9}".format(*c))
def test_cpu_forward_general_geometry(cpu_op, case):
    n, h, w, g, cg, k, s, p, d, os_ = case
    inp, off, msk = make_inputs(n, h, w, g, cg, k, s, p, d, seed=1)
    args = kernel_args(k, s, p, d, g, cg, os_)
    ref = reference_dcnv3(inp, off, msk, *args)
    out = ext.dcnv3_compiled(inp, off, msk, *args)
    assert out.shape == (n, out_size(h, k, s, p, d), out_size(w, k, s, p, d), g * cg)
    assert rel_err(out, ref) < 1e-12
    out32 = ext.dcnv3_compiled(inp.float(), off.float(), msk.float(), *args)
    assert rel_err(out32, reference_dcnv3(*(t.float().double() for t in (inp, off, msk)), *args)) <= 1e-5


def test_cpu_forward_into_poisoned_out(cpu_op):
    inp, off, msk = make_inputs(2, 9, 13, 4, 16, dtype=torch.float32, seed=2)
    args = kernel_args(3, 1, 1, 1, 4, 16, 1.0)
    out = torch.full((2, 9, 13, 64), float("nan"))
    res = ext.dcnv3_forward(inp, off, msk, *args, out=out)
    assert res.data_ptr() == out.data_ptr()
    assert torch.isfinite(out).all()
    assert rel_err(out, reference_dcnv3(*(t.double() for t in (inp, off, msk)), *args)) <= 1e-5
    with pytest.raises(ValueError):
        ext.dcnv3_forward(inp, off, msk, *args, out=torch.empty(2, 9, 13, 63))


def test_cpu_forward_is_deterministic_and_thread_count_independent(cpu_op):
    inp, off, msk = make_inputs(1, 15, 21, 8, 16, dtype=torch.float32, seed=3)
    args = kernel_args(3, 1, 1, 1, 8, 16, 2.0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = ext.dcnv3_compiled(inp, off, msk, *args)
        torch.set_num_threads(max(2, threads))
        b = ext.dcnv3_compiled(inp, off, msk, *args)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a, b)


def test_cpu_noncontiguous_and_mixed_dtype_inputs(cpu_op):
    inp, off, msk = make_inputs(2, 7, 9, 4, 16, dtype=torch.float32, seed=4)
    args = kernel_args(3, 1, 1, 1, 4, 16, 1.0)
    ref = ext.dcnv3_compiled(inp, off, msk, *args)
    inp_nc = inp.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)  # channels-first memory, same values
    off_nc = torch.cat([off, off], dim=-1)[..., : off.shape[-1]]
    assert not inp_nc.is_contiguous() and not off_nc.is_contiguous()
    assert torch.equal(ext.dcnv3_compiled(inp_nc, off_nc, msk.double(), *args), ref)


def test_cpu_bad_arguments_raise_value_error(cpu_op):
    inp, off, msk = make_inputs(1, 5, 6, 2, 16, dtype=torch.float32)
    args = kernel_args(3, 1, 1, 1, 2, 16, 1.0)
    with pytest.raises(ValueError, match="4-D"):
        ext.dcnv3_compiled(inp[0], off, msk, *args)
    with pytest.raises(ValueError, match="channels"):
        ext.dcnv3_compiled(inp[..., :31], off, msk, *args)
    with pytest.raises(ValueError):
        ext.dcnv3_compiled(inp, off[..., :-2], msk, *args)
    with pytest.raises(ValueError):
        ext.dcnv3_compiled(inp, off[:, :-1], msk[:, :-1], *args)  # wrong Hout
    with pytest.raises(ValueError, match="dtype"):
        ext.dcnv3_compiled(inp.long(), off, msk, *args)
    with pytest.raises(TypeError, match="offset must be a tensor"):
        ext.dcnv3_compiled(inp, off.tolist(), msk, *args)
    with pytest.raises(ValueError, match="grad_output must be"):
        ext.dcnv3_backward(inp, off, msk, *args, torch.zeros(1, 5, 6, 16))
    with pytest.raises(ValueError, match="out must be contiguous"):
        ext.dcnv3_forward(inp, off, msk, *args, out=torch.zeros(1, 5, 6, 32, dtype=torch.float64))


# ----------------------------------------------------------------------------------------- CPU backward


@pytest.mark.parametrize("case", [MODEL_CASES[0], MODEL_CASES[3]] + GENERAL_CASES[:3], ids=str)
def test_cpu_backward_matches_autograd_of_reference(cpu_op, case):
    if len(case) == 6:
        n, h, w, g, cg, os_ = case
        k, s, p, d = 3, 1, 1, 1
    else:
        n, h, w, g, cg, k, s, p, d, os_ = case
    inp, off, msk = (t.requires_grad_() for t in make_inputs(n, h, w, g, cg, k, s, p, d, seed=5, exact=0))
    args = kernel_args(k, s, p, d, g, cg, os_)
    ref = reference_dcnv3(inp, off, msk, *args)
    grad_out = torch.randn_like(ref)
    expected = torch.autograd.grad(ref, (inp, off, msk), grad_out)
    got = torch.autograd.grad(ext.dcnv3_compiled(inp, off, msk, *args), (inp, off, msk), grad_out)
    for name, a, b in zip(("input", "offset", "mask"), got, expected, strict=True):
        assert rel_err(a, b) < 1e-10, name
    # fp32 / bf16: the same within their precision
    i32, o32, m32 = (t.detach().float().requires_grad_() for t in (inp, off, msk))
    got32 = torch.autograd.grad(ext.dcnv3_compiled(i32, o32, m32, *args), (i32, o32, m32), grad_out.float())
    for name, a, b in zip(("input", "offset", "mask"), got32, expected, strict=True):
        assert rel_err(a, b) < 1e-4, name


def test_cpu_gradcheck_fp64(cpu_op):
    gen = torch.Generator().manual_seed(6)
    inp = torch.randn(2, 4, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    # offsets away from integer positions (the bilinear kink) so finite differences are valid
    off = (
        (torch.randint(-3, 3, (2, 4, 5, 2 * 9 * 2), generator=gen) + 0.3 + 0.4 * torch.rand(2, 4, 5, 36, generator=gen))
        .double()
        .requires_grad_()
    )
    msk = torch.rand(2, 4, 5, 18, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: ext.dcnv3_compiled(a, b, c, 3, 3, 1, 1, 1, 1, 1, 1, 2, 3, 2.0), (inp, off, msk)
    )


# ------------------------------------------------------------------------- against the pure-PyTorch core


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: "N{}_{}x{}_G{}_Cg{}_s{}".format(*c))
def test_cpu_matches_pure_torch_core(cpu_op, case):
    n, h, w, g, cg, os_ = case
    inp, off, msk = make_inputs(n, h, w, g, cg, dtype=torch.float32, seed=7)
    args = kernel_args(3, 1, 1, 1, g, cg, os_)
    expected = dcnv3_core_torch(inp, off, msk, *args)
    got = ext.dcnv3_compiled(inp, off, msk, *args)
    assert rel_err(got, expected) <= 1e-5


@pytest.mark.parametrize("case", GENERAL_CASES, ids=lambda c: "k{5}_s{6}_p{7}_d{8}_os{9}".format(*c))
def test_cpu_matches_pure_torch_core_general_geometry(cpu_op, case):
    n, h, w, g, cg, k, s, p, d, os_ = case
    inp, off, msk = make_inputs(n, h, w, g, cg, k, s, p, d, dtype=torch.float32, seed=8)
    args = kernel_args(k, s, p, d, g, cg, os_)
    assert rel_err(ext.dcnv3_compiled(inp, off, msk, *args), dcnv3_core_torch(inp, off, msk, *args)) <= 1e-5


@pytest.mark.parametrize("case", MODEL_CASES[:4], ids=lambda c: "N{}_{}x{}_G{}_Cg{}_s{}".format(*c))
def test_cpu_gradients_match_autograd_of_pure_torch_core(cpu_op, case):
    n, h, w, g, cg, os_ = case
    inputs = make_inputs(n, h, w, g, cg, dtype=torch.float64, seed=9, exact=0.0)
    args = kernel_args(3, 1, 1, 1, g, cg, os_)
    grad_out = torch.randn(n, h, w, g * cg, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    grads = []
    for fn in (ext.dcnv3_compiled, dcnv3_core_torch):
        leaves = [t.clone().requires_grad_() for t in inputs]
        (fn(*leaves, *args) * grad_out).sum().backward()
        grads.append([t.grad for t in leaves])
    for name, got, expected in zip(("input", "offset", "mask"), *grads, strict=True):
        assert rel_err(got, expected) <= 1e-9, name


# --------------------------------------------------------------------------------------------- build


def test_switched_off_the_op_is_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setattr(compiled, "_results", {})  # as in a process started with the switch off
    monkeypatch.setenv(SWITCH_ENV, "off")
    assert ext.load_dcnv3_op("cpu") is None
    assert ext.dcnv3_op_error("cpu") == f"compiled ops are off: {SWITCH_ENV}=off"
    assert ext.available_backends() == []
    with pytest.raises(RuntimeError, match="unavailable: compiled ops are off"):
        ext.dcnv3_compiled(*make_inputs(1, 3, 3, 1, 2, dtype=torch.float32), *kernel_args(3, 1, 1, 1, 1, 2, 1.0))
    assert ext.load_dcnv3_op("mps") is None and ext.dcnv3_op_error("mps") == "no compiled DCNv3 op for mps tensors"


def test_available_backends_lists_cpu(cpu_op):
    assert "cpu" in ext.available_backends()
    assert ("cuda" in ext.available_backends()) == (HAS_CUDA and ext.load_dcnv3_op("cuda") is not None)


def _torch_cuda_macro_stub(tmp_path: Path) -> tuple[str, ...]:
    """CPU wheels of torch lack the generated c10/cuda/impl/cuda_cmake_macros.h; supply it for the check."""
    if any((Path(p) / "c10/cuda/impl/cuda_cmake_macros.h").is_file() for p in _torch_include_paths()):
        return ()
    stub = tmp_path / "stub_include" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    return (str(tmp_path / "stub_include"),)


def _torch_include_paths():
    from torch.utils import cpp_extension

    return cpp_extension.include_paths()


def test_cuda_sources_compile_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: cannot compile-check the CUDA op")
    # Each architecture asked for gets its -gencode; one is compiled (the device code has no per-architecture
    # branches, and every further architecture repeats the whole device compile: minutes on two cores).
    several = ext.nvcc_compile_command(tmp_path / "unused.o", archs=("8.7", "8.9", "9.0"), nvcc=nvcc)
    for number in ("87", "89", "90"):
        assert f"arch=compute_{number},code=sm_{number}" in several
    cmd = ext.nvcc_compile_command(
        tmp_path / "dcnv3_cuda.o", archs=("9.0",), extra_include_paths=_torch_cuda_macro_stub(tmp_path), nvcc=nvcc
    )
    cmd += ["--threads", "0", "-w"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    obj = (tmp_path / "dcnv3_cuda.o").read_bytes()
    assert b"sm_90" in obj
    for kernel in (b"dcnv3_forward_kernel", b"dcnv3_forward_gather_kernel", b"dcnv3_backward_kernel"):
        assert kernel in obj


# ------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: "N{}_{}x{}_G{}_Cg{}_s{}".format(*c))
def test_cuda_forward_backward(cuda_kernel, case):
    n, h, w, g, cg, os_ = case
    args = kernel_args(3, 1, 1, 1, g, cg, os_)
    inp, off, msk = (t.requires_grad_() for t in make_inputs(n, h, w, g, cg, seed=8, device="cuda", exact=0))
    ref = reference_dcnv3(inp, off, msk, *args)
    grad_out = torch.randn_like(ref)
    expected = torch.autograd.grad(ref, (inp, off, msk), grad_out)
    out = ext.dcnv3_compiled(inp, off, msk, *args)
    assert out.is_cuda and rel_err(out, ref) < 1e-12
    got = torch.autograd.grad(out, (inp, off, msk), grad_out)
    for name, a, b in zip(("input", "offset", "mask"), got, expected, strict=True):
        assert rel_err(a, b) < 1e-10, name
    poisoned = torch.full(ref.shape, float("nan"), device="cuda", dtype=torch.float32)
    i32, o32, m32 = (t.detach().float() for t in (inp, off, msk))
    ext.dcnv3_forward(i32, o32, m32, *args, out=poisoned)
    assert rel_err(poisoned, reference_dcnv3(i32.double(), o32.double(), m32.double(), *args)) <= 1e-5
    for dt in (torch.float16, torch.bfloat16):
        ih, oh, mh = (t.detach().to(dt) for t in (inp, off, msk))
        outh = ext.dcnv3_compiled(ih, oh, mh, *args)
        assert rel_err(outh, reference_dcnv3(ih.double(), oh.double(), mh.double(), *args)) <= 1e-2, dt


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_matches_cpu_op(cpu_op, cuda_kernel):
    inp, off, msk = make_inputs(2, 17, 23, 10, 16, dtype=torch.float32, seed=9)
    args = kernel_args(3, 1, 1, 1, 10, 16, 2.0)
    cpu = ext.dcnv3_compiled(inp, off, msk, *args)
    gpu = ext.dcnv3_compiled(inp.cuda(), off.cuda(), msk.cuda(), *args).cpu()
    assert rel_err(gpu, cpu) <= 1e-6
    assert math.isfinite(gpu.abs().max().item())


# (N, H, W, group, group_channels, k, stride, pad, dilation, offset_scale): channels per group that are not a
# multiple of the 16-byte vector (5, 6, 12 halves), a group wider than one block of lanes (1040 floats), pixel
# counts that leave a partial last block, strides, dilations, kernels other than 3x3
CUDA_HARD_CASES = GENERAL_CASES + [
    (1, 9, 10, 3, 6, 3, 1, 1, 1, 2.0),
    (2, 5, 11, 2, 12, 3, 1, 1, 1, 1.0),
    (1, 3, 4, 1, 1040, 3, 1, 1, 1, 1.0),
    (1, 23, 1, 7, 16, 3, 1, 1, 1, 4.0),
]
CUDA_TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("dtype", list(CUDA_TOLERANCE), ids=str)
@pytest.mark.parametrize("case", CUDA_HARD_CASES, ids=lambda c: "N{}_{}x{}_G{}_Cg{}_k{}_s{}_p{}_d{}_os{}".format(*c))
def test_cuda_forward_kernels_on_general_geometry(cuda_kernel, case, dtype):
    n, h, w, g, cg, k, s, p, d, os_ = case
    args = kernel_args(k, s, p, d, g, cg, os_)
    inp, off, msk = make_inputs(n, h, w, g, cg, k, s, p, d, seed=11, device="cuda", dtype=dtype)
    ref = reference_dcnv3(inp.double(), off.double(), msk.double(), *args)  # the rounded inputs, in fp64
    out = torch.full(ref.shape, float("nan"), device="cuda", dtype=dtype)  # every element must be written
    ext.dcnv3_forward(inp, off, msk, *args, out=out)
    assert rel_err(out, ref) <= CUDA_TOLERANCE[dtype]


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_cuda_forward_kernels_on_unaligned_tensors(cuda_kernel, dtype):
    # input and out one element past a 16-byte boundary: no vector access is allowed (the baseline takes over)
    n, h, w, g, cg = 1, 6, 7, 4, 16
    args = kernel_args(3, 1, 1, 1, g, cg, 1.0)
    inp, off, msk = make_inputs(n, h, w, g, cg, seed=12, device="cuda", dtype=dtype)
    shifted = torch.empty(inp.numel() + 1, device="cuda", dtype=dtype)[1:].view(inp.shape)
    shifted.copy_(inp)
    out = torch.full((inp.numel() + 1,), float("nan"), device="cuda", dtype=dtype)[1:].view(inp.shape)
    assert shifted.data_ptr() % 16 != 0 and shifted.is_contiguous()
    ext.dcnv3_forward(shifted, off, msk, *args, out=out)
    ref = reference_dcnv3(inp.double(), off.double(), msk.double(), *args)
    assert rel_err(out, ref) <= CUDA_TOLERANCE[dtype]


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_op_reports_the_kernel_a_forward_ran(cuda_op, cuda_kernel):
    # benchmarks time "smem" etc.: a gather kernel that leaves unaligned tensors to the baseline must say so
    n, h, w, g, cg = 1, 6, 7, 4, 16
    args = kernel_args(3, 1, 1, 1, g, cg, 1.0)
    inp, off, msk = make_inputs(n, h, w, g, cg, seed=14, device="cuda", dtype=torch.float32)
    ext.dcnv3_forward(inp, off, msk, *args)
    assert cuda_op.last_forward_kernel() == cuda_kernel
    shifted = torch.empty(inp.numel() + 1, device="cuda", dtype=inp.dtype)[1:].view(inp.shape)
    shifted.copy_(inp)
    ext.dcnv3_forward(shifted, off, msk, *args)
    assert cuda_op.last_forward_kernel() == "baseline"


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_forward_kernels_agree_with_the_baseline(cuda_op):
    inp, off, msk = make_inputs(2, 19, 33, 10, 16, seed=13, device="cuda", dtype=torch.float32)
    args = kernel_args(3, 1, 1, 1, 10, 16, 2.0)
    before = cuda_op.forward_kernel()
    try:
        outs = {}
        for name in CUDA_FORWARD_KERNELS:
            cuda_op.set_forward_kernel(name)
            outs[name] = ext.dcnv3_compiled(inp, off, msk, *args)
    finally:
        cuda_op.set_forward_kernel(before)
    for name, out in outs.items():
        assert rel_err(out, outs["baseline"]) <= 1e-6, name
    with pytest.raises(ValueError, match="unknown DCNv3 CUDA forward kernel"):
        cuda_op.set_forward_kernel("fastest")


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_forward_kernel_chosen_by_the_environment(cuda_op):
    # a fresh process: the variable is read at the first use; an unknown name is one clear ValueError
    script = (
        "import os\n"
        "from cityscapes_seg_ros.dcnv3.compiled import load_dcnv3_op\n"
        "op = load_dcnv3_op('cuda')\n"
        "try:\n"
        "    op.forward_kernel()\n"
        "except ValueError as exc:\n"
        "    print('error:', str(exc).splitlines()[0])\n"
        "os.environ['CITYSCAPES_SEG_DCNV3_CUDA_KERNEL'] = 'regs'\n"
        "print('kernel:', op.forward_kernel())\n"
    )
    repo = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "CITYSCAPES_SEG_DCNV3_CUDA_KERNEL": "fastest", "PYTHONPATH": path}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "error: CITYSCAPES_SEG_DCNV3_CUDA_KERNEL=fastest: unknown DCNv3 CUDA forward kernel" in res.stdout
    assert "kernel: regs" in res.stdout


def test_the_op_built_at_install_is_used_only_while_its_digest_matches(cpu_op):
    try:
        import cityscapes_seg_ros._dcnv3_cpu as installed
    except ImportError:
        pytest.skip("installed without building the op (isolated build): it is built just in time instead")
    current = OPS["dcnv3_cpu"].digest(compiled.kernels_root())
    assert (cpu_op is installed) == (getattr(installed, "source_digest", None) == current)
