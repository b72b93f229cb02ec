"""The pure-PyTorch DCNv3 core and the backend dispatch ``cityscapes_seg_ros.ops.dcnv3``."""

from __future__ import annotations

import pytest
import torch
from support.dcnv3_reference import GENERAL_CASES, MODEL_CASES, kernel_args, make_inputs, reference_dcnv3, rel_err

from cityscapes_seg_ros import build_segmentor, ops
from cityscapes_seg_ros.dcnv3 import compiled as dcnv3_compiled
from cityscapes_seg_ros.dcnv3 import dispatch as dcnv3_dispatch
from cityscapes_seg_ros.dcnv3 import geometry as dcnv3_args
from cityscapes_seg_ros.dcnv3.compiled import dcnv3_op_error, load_dcnv3_op
from cityscapes_seg_ros.dcnv3.reference import dcnv3_core_torch
from cityscapes_seg_ros.ops import compiled

CASE_ID = "N{}_{}x{}_G{}_Cg{}_s{}".format


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: CASE_ID(*c))
def test_core_matches_reference_on_model_group_sizes(case):
    n, h, w, g, cg, os_ = case
    inp, off, msk = make_inputs(n, h, w, g, cg, dtype=torch.float64, seed=21)
    args = kernel_args(3, 1, 1, 1, g, cg, os_)
    expected = reference_dcnv3(inp, off, msk, *args)
    assert rel_err(dcnv3_core_torch(inp, off, msk, *args), expected) <= 1e-12
    got32 = dcnv3_core_torch(inp.float(), off.float(), msk.float(), *args)
    assert got32.dtype == torch.float32
    assert rel_err(got32, expected) <= 1e-5


@pytest.mark.parametrize("case", GENERAL_CASES, ids=lambda c: "k{5}_s{6}_p{7}_d{8}_os{9}".format(*c))
def test_core_matches_reference_on_general_geometry(case):
    n, h, w, g, cg, k, s, p, d, os_ = case
    inp, off, msk = make_inputs(n, h, w, g, cg, k, s, p, d, dtype=torch.float64, seed=22)
    args = kernel_args(k, s, p, d, g, cg, os_)
    assert rel_err(dcnv3_core_torch(inp, off, msk, *args), reference_dcnv3(inp, off, msk, *args)) <= 1e-12


def test_core_rectangular_kernel_follows_point_order():
    inp, _, _ = make_inputs(1, 8, 9, 2, 4, dtype=torch.float64, seed=23)
    gen = torch.Generator().manual_seed(24)
    off = torch.randn(1, 8, 9, 2 * 3 * 5 * 2, generator=gen, dtype=torch.float64) * 2
    msk = torch.rand(1, 8, 9, 2 * 15, generator=gen, dtype=torch.float64)
    args = (3, 5, 1, 1, 1, 2, 1, 1, 2, 4, 1.0)  # kernel 3 high, 5 wide
    assert rel_err(dcnv3_core_torch(inp, off, msk, *args), reference_dcnv3(inp, off, msk, *args)) <= 1e-12


def test_points_far_outside_the_image_sample_zero():
    inp, off, msk = make_inputs(1, 6, 7, 2, 8, dtype=torch.float32, seed=25)
    far = torch.full_like(off, 1000.0)
    far[..., 1::2] = -1000.0
    out = dcnv3_core_torch(inp, far, msk, *kernel_args(3, 1, 1, 1, 2, 8, 1.0))
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_fp32(dtype):
    inp, off, msk = make_inputs(2, 9, 11, 4, 16, dtype=torch.float64, seed=26)
    args = kernel_args(3, 1, 1, 1, 4, 16, 1.0)
    low = [t.to(dtype) for t in (inp, off, msk)]
    out = dcnv3_core_torch(*low, *args)
    assert out.dtype == dtype
    # the same low-precision numbers through the fp64 reference: only the output rounding differs
    expected = reference_dcnv3(*[t.double() for t in low], *args)
    assert rel_err(out, expected) <= (4e-3 if dtype == torch.float16 else 1e-2)


def test_core_gradients_pass_gradcheck():
    inp, off, msk = make_inputs(1, 5, 6, 2, 3, dtype=torch.float64, seed=27, exact=0.0)
    args = kernel_args(3, 1, 1, 1, 2, 3, 1.0)
    leaves = tuple(t.clone().requires_grad_() for t in (inp, off, msk))
    assert torch.autograd.gradcheck(lambda *t: dcnv3_core_torch(*t, *args), leaves)


def test_core_gradients_match_autograd_of_reference():
    inp, off, msk = make_inputs(2, 7, 9, 4, 8, dtype=torch.float64, seed=28, exact=0.0)
    args = kernel_args(3, 1, 1, 1, 4, 8, 2.0)
    grad_out = torch.randn(2, 7, 9, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(29))
    grads = []
    for fn in (dcnv3_core_torch, reference_dcnv3):
        leaves = [t.clone().requires_grad_() for t in (inp, off, msk)]
        (fn(*leaves, *args) * grad_out).sum().backward()
        grads.append([t.grad for t in leaves])
    for name, got, expected in zip(("input", "offset", "mask"), *grads, strict=True):
        assert rel_err(got, expected) <= 1e-10, name


def test_bad_shapes_raise_value_error_naming_the_problem():
    inp, off, msk = make_inputs(1, 5, 6, 2, 16, dtype=torch.float32)
    args = kernel_args(3, 1, 1, 1, 2, 16, 1.0)
    with pytest.raises(ValueError, match="4-D"):
        ops.dcnv3(inp[0], off, msk, *args)
    with pytest.raises(ValueError, match="channels"):
        ops.dcnv3(inp[..., :31], off, msk, *args)
    with pytest.raises(ValueError, match="offset shape"):
        ops.dcnv3(inp, off[..., :-2], msk, *args)
    with pytest.raises(ValueError, match="mask shape"):
        ops.dcnv3(inp, off, msk[:, :-1], *args)
    with pytest.raises(ValueError, match="too small"):
        ops.dcnv3(inp, off, msk, 3, 3, 1, 1, 0, 0, 4, 4, 2, 16, 1.0)
    with pytest.raises(ValueError, match="unsupported dtype torch.int64"):
        ops.dcnv3(inp.long(), off, msk, *args)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_arguments_are_checked_once_per_call(monkeypatch, backend):
    if backend == "cpu" and load_dcnv3_op("cpu") is None:
        pytest.skip(f"compiled CPU op unavailable: {dcnv3_op_error('cpu')}")
    calls = []
    check = dcnv3_args.check_dcnv3_args

    def counting_check(*args):
        calls.append(args)
        return check(*args)

    for module in (dcnv3_args, dcnv3_compiled):  # every module that checks binds the name
        monkeypatch.setattr(module, "check_dcnv3_args", counting_check)
    inputs = make_inputs(1, 5, 6, 2, 16, dtype=torch.float32)
    ops.dcnv3(*inputs, *kernel_args(3, 1, 1, 1, 2, 16, 1.0), backend=backend)
    assert len(calls) == 1


# ------------------------------------------------------------------------------------------ dispatch


def test_unknown_backend_is_rejected(tiny_t_fixture):
    inputs = make_inputs(1, 4, 5, 2, 4, dtype=torch.float32)
    with pytest.raises(ValueError, match="unknown backend 'triton'"):
        ops.dcnv3(*inputs, *kernel_args(3, 1, 1, 1, 2, 4, 1.0), backend="triton")
    with pytest.raises(ValueError, match="unknown DCNv3 backend 'fast'"):
        build_segmentor(tiny_t_fixture["config"], device="cpu", dcnv3_backend="fast")


def test_cuda_backend_on_cpu_tensors_is_a_clear_error():
    inputs = make_inputs(1, 4, 5, 2, 4, dtype=torch.float32)
    with pytest.raises(RuntimeError, match="cannot run tensors on cpu"):
        ops.dcnv3(*inputs, *kernel_args(3, 1, 1, 1, 2, 4, 1.0), backend="cuda")


def test_auto_uses_the_compiled_cpu_op_when_it_builds_and_agrees_with_torch():
    if load_dcnv3_op("cpu") is None:
        pytest.skip(f"compiled CPU op unavailable: {dcnv3_op_error('cpu')}")
    assert ops.resolve_backend("cpu") == "cpu"
    inputs = make_inputs(2, 9, 11, 4, 16, dtype=torch.float32, seed=30)
    args = kernel_args(3, 1, 1, 1, 4, 16, 1.0)
    assert rel_err(ops.dcnv3(*inputs, *args), ops.dcnv3(*inputs, *args, backend="torch")) <= 1e-5


def test_environment_forces_the_pure_torch_core(monkeypatch):
    monkeypatch.setenv(ops.BACKEND_ENV, "torch")
    assert ops.resolve_backend("cpu") == "torch"
    monkeypatch.setenv(ops.BACKEND_ENV, "gpu")
    with pytest.raises(ValueError, match=ops.BACKEND_ENV):
        ops.resolve_backend("cpu")


def test_auto_falls_back_to_torch_core_when_no_compiled_op(monkeypatch, caplog):
    monkeypatch.setattr(compiled, "_results", {"dcnv3_cpu": (None, "no compiler")})
    monkeypatch.setattr(dcnv3_dispatch, "_logged_choices", set())
    with caplog.at_level("INFO", logger="cityscapes_seg_ros.dcnv3"):
        assert ops.resolve_backend("cpu") == "torch"
        assert ops.resolve_backend("cpu") == "torch"
    choices = [r.getMessage() for r in caplog.records if "DCNv3 on cpu" in r.getMessage()]
    assert choices == ["DCNv3 on cpu: pure-PyTorch core (no compiler)"]  # logged once
    with pytest.raises(RuntimeError, match="no compiler"):
        ops.resolve_backend("cpu", "cpu")


def test_a_cuda_kernel_without_gpu_tests_is_logged_when_requested(caplog):
    with caplog.at_level("WARNING", logger="cityscapes_seg_ros.dcnv3"):
        dcnv3_compiled.note_cuda_kernel_request("")
        dcnv3_compiled.note_cuda_kernel_request("baseline")
        assert not caplog.records
        dcnv3_compiled.note_cuda_kernel_request("tile_regs")
    assert ["tile_regs" in r.getMessage() and "not passed the GPU tests" in r.getMessage() for r in caplog.records] == [
        True
    ]
