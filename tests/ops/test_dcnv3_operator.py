"""The DCNv3 core as the PyTorch operator ``torch.ops.cityscapes_seg.dcnv3`` (``dcnv3/library.py``): its
registration (opcheck), its gradients, and that ``torch.compile(fullgraph=True)`` and ``torch.export`` see it
as one op, in the DCNv3 module and in a whole (tiny) segmentor. CUDA variants run where a GPU is."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from support.dcnv3_reference import kernel_args, make_inputs, rel_err
from torch.fx.experimental.proxy_tensor import make_fx

from cityscapes_seg_ros import build_segmentor, ops
from cityscapes_seg_ros.dcnv3.compiled import dcnv3_op_error, load_dcnv3_op
from cityscapes_seg_ros.dcnv3.library import BACKWARD_OP_NAME, OP_NAME, dcnv3_backward_op, dcnv3_op
from cityscapes_seg_ros.dcnv3.reference import dcnv3_core_torch
from cityscapes_seg_ros.models.dcnv3 import DCNv3
from cityscapes_seg_ros.ops import compiled

HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device"))]


@pytest.fixture(params=["compiled", "torch core"])
def core(request, monkeypatch):
    """Runs a test with the operator on the compiled CPU op and on its pure-PyTorch fallback."""
    if request.param == "compiled":
        if load_dcnv3_op("cpu") is None:
            pytest.skip(f"compiled CPU op unavailable: {dcnv3_op_error('cpu')}")
    else:
        monkeypatch.setitem(compiled._results, "dcnv3_cpu", (None, "switched off by the test"))
    return request.param


def gradcheck_inputs(device="cpu", seed=6):
    gen = torch.Generator().manual_seed(seed)
    inp = torch.randn(1, 3, 4, 6, generator=gen, dtype=torch.float64)
    # offsets away from integer positions (the bilinear kink) so finite differences are valid
    off = torch.randint(-3, 3, (1, 3, 4, 36), generator=gen) + 0.3 + 0.4 * torch.rand(1, 3, 4, 36, generator=gen)
    msk = torch.rand(1, 3, 4, 18, generator=gen, dtype=torch.float64)
    return [t.double().to(device).requires_grad_() for t in (inp, off, msk)]


GRADCHECK_ARGS = (3, 3, 1, 1, 1, 1, 1, 1, 2, 3, 2.0)


# ------------------------------------------------------------------------------------------ registration


def test_registration_waits_for_the_first_use_of_the_ops():
    code = (
        "import sys, torch, cityscapes_seg_ros, cityscapes_seg_ros.ops, cityscapes_seg_ros.models\n"
        "assert not hasattr(torch.ops.cityscapes_seg, 'dcnv3'), 'registered by the package import'\n"
        "cityscapes_seg_ros.ops.dcnv3\n"
        "print(torch.ops.cityscapes_seg.dcnv3.default._schema)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    schema = result.stdout.strip()
    assert schema == (
        "cityscapes_seg::dcnv3(Tensor input, Tensor offset, Tensor mask, SymInt kernel_h, SymInt kernel_w, "
        "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, "
        "SymInt group, SymInt group_channels, float offset_scale) -> Tensor"
    )


def test_opcheck_forward_and_backward_ops(core):
    inp, off, msk = (t.detach().float() for t in gradcheck_inputs())
    torch.library.opcheck(dcnv3_op, (inp, off, msk, *GRADCHECK_ARGS))
    leaves = [t.clone().requires_grad_() for t in (inp, off, msk)]
    torch.library.opcheck(dcnv3_op, (*leaves, *GRADCHECK_ARGS))  # with the autograd formula
    grad_out = torch.randn(1, 3, 4, 6)
    torch.library.opcheck(dcnv3_backward_op, (inp, off, msk, *GRADCHECK_ARGS, grad_out))


def test_the_operator_checks_its_arguments():
    inp, off, msk = (t.detach() for t in gradcheck_inputs())
    with pytest.raises(ValueError, match="offset shape"):
        dcnv3_op(inp, off[..., :-2], msk, *GRADCHECK_ARGS)
    with pytest.raises(ValueError, match="expected group\\*group_channels"):
        dcnv3_op(inp, off, msk, 3, 3, 1, 1, 1, 1, 1, 1, 2, 4, 2.0)


def test_ops_dcnv3_names_a_non_tensor_in_one_line():
    inp, off, msk = (t.detach() for t in gradcheck_inputs())
    with pytest.raises(TypeError, match="^dcnv3: mask must be a tensor, got list$"):
        ops.dcnv3(inp, off, msk.tolist(), *GRADCHECK_ARGS)


# ------------------------------------------------------------------------------------------ values, gradients


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_operator_equals_the_torch_core(core, dtype):
    inputs = make_inputs(2, 7, 9, 4, 8, dtype=dtype, seed=40)
    args = kernel_args(3, 1, 1, 1, 4, 8, 1.0)
    got = torch.ops.cityscapes_seg.dcnv3(*inputs, *args)
    expected = dcnv3_core_torch(*(t.double() for t in inputs), *args)
    assert got.dtype == dtype
    assert rel_err(got.double(), expected) <= {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 1e-2)


def test_gradcheck_fp64(core):
    assert torch.autograd.gradcheck(lambda a, b, c: dcnv3_op(a, b, c, *GRADCHECK_ARGS), gradcheck_inputs())


def test_gradients_equal_the_torch_core(core):
    inputs = make_inputs(2, 6, 7, 2, 8, dtype=torch.float64, seed=41, exact=0.0)
    args = kernel_args(3, 1, 1, 1, 2, 8, 1.0)
    grad_out = torch.randn(2, 6, 7, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(42))
    grads = []
    for fn in (dcnv3_op, dcnv3_core_torch):
        leaves = [t.clone().requires_grad_() for t in inputs]
        (fn(*leaves, *args) * grad_out).sum().backward()
        grads.append([t.grad for t in leaves])
    for name, got, expected in zip(("input", "offset", "mask"), *grads, strict=True):
        assert rel_err(got, expected) <= 1e-9, name


def test_gradients_come_back_in_each_tensors_dtype():
    inp = torch.randn(1, 4, 5, 8, dtype=torch.float64, requires_grad=True)
    off = torch.randn(1, 4, 5, 36, dtype=torch.float32, requires_grad=True)
    msk = torch.rand(1, 4, 5, 18, dtype=torch.float32, requires_grad=True)
    dcnv3_op(inp, off, msk, 3, 3, 1, 1, 1, 1, 1, 1, 2, 4, 1.0).sum().backward()
    assert (inp.grad.dtype, off.grad.dtype, msk.grad.dtype) == (torch.float64, torch.float32, torch.float32)


# ------------------------------------------------------------------------------------------ compile, export


def op_count(graph: torch.fx.Graph, op) -> int:
    return sum(1 for node in graph.nodes if node.op == "call_function" and node.target is op)


def test_dcnv3_module_compiles_to_one_graph_with_the_op():
    torch.manual_seed(50)
    module = DCNv3(channels=16, group=2, offset_scale=1.0).eval()
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled_module = torch.compile(module, backend=counting_backend, fullgraph=True)
    x = torch.randn(2, 6, 7, 16)
    with torch.no_grad():
        assert rel_err(compiled_module(x), module(x)) <= 1e-6
    assert len(graphs) == 1
    assert op_count(graphs[0].graph, torch.ops.cityscapes_seg.dcnv3.default) == 1


def test_dcnv3_module_compiled_with_inductor_equals_eager():
    torch.manual_seed(57)
    module = DCNv3(channels=16, group=2, offset_scale=1.0).eval()
    compiled_module = torch.compile(module, fullgraph=True)
    gen = torch.Generator().manual_seed(58)
    with torch.no_grad():
        for _ in range(2):  # fresh inputs, same graph
            x = torch.randn(2, 6, 7, 16, generator=gen)
            assert rel_err(compiled_module(x), module(x)) <= 1e-5


@pytest.fixture(scope="module")
def tiny_segmentor(tiny_t_fixture):
    torch.manual_seed(51)
    return build_segmentor(tiny_t_fixture["config"], device="cpu")


def dcnv3_layers(model: torch.nn.Module) -> int:
    return sum(isinstance(m, DCNv3) for m in model.modules())


def test_tiny_segmentor_compiles_to_one_graph_and_equals_eager(tiny_segmentor):
    # aot_eager: dynamo's single graph, AOT autograd's decompositions, no Inductor code generation (a minute
    # and more on two cores for this model; the DCNv3 module test above runs Inductor)
    compiled_model = torch.compile(tiny_segmentor, backend="aot_eager", fullgraph=True)
    gen = torch.Generator().manual_seed(52)
    with torch.no_grad():
        for _ in range(2):  # fresh inputs, same graph
            x = torch.randn(1, 3, 64, 96, generator=gen)
            assert rel_err(compiled_model(x), tiny_segmentor(x)) <= 1e-4


def test_tiny_segmentor_exports_with_one_op_per_dcnv3_layer(tiny_segmentor):
    # the default (non-strict) export, as torch.onnx.export(dynamo=True) makes it; the fullgraph compile above
    # is the proof that dynamo (strict export) traces the model without a break
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(53))
    exported = torch.export.export(tiny_segmentor, (x,))
    layers = dcnv3_layers(tiny_segmentor)
    assert layers > 0
    assert op_count(exported.graph, torch.ops.cityscapes_seg.dcnv3.default) == layers
    fresh = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(54))
    with torch.no_grad():
        assert rel_err(exported.module()(fresh), tiny_segmentor(fresh)) <= 1e-5


def test_training_graph_holds_the_backward_op():
    torch.manual_seed(55)
    module = DCNv3(channels=8, group=2)
    x = torch.randn(1, 5, 6, 8, requires_grad=True)
    backward_graphs = []

    def record_backward(gm, example_inputs):
        backward_graphs.append(gm)
        return gm.forward

    from torch._dynamo.backends.common import aot_autograd

    compiled_module = torch.compile(
        module,
        backend=aot_autograd(fw_compiler=lambda gm, _: gm.forward, bw_compiler=record_backward),
        fullgraph=True,
    )
    compiled_module(x).square().sum().backward()
    grad_compiled = x.grad.clone()
    x.grad = None
    module(x).square().sum().backward()
    assert rel_err(grad_compiled, x.grad) <= 1e-5
    assert op_count(backward_graphs[0].graph, torch.ops.cityscapes_seg.dcnv3_backward.default) == 1


def test_torch_backend_stays_plain_pytorch():
    torch.manual_seed(56)
    module = DCNv3(channels=8, group=2).eval()
    module.backend = "torch"
    graph = torch.export.export(module, (torch.randn(1, 5, 6, 8),)).graph
    assert op_count(graph, torch.ops.cityscapes_seg.dcnv3.default) == 0
    assert any(
        node.target is torch.ops.aten.embedding_bag.default or "embedding_bag" in str(node.target)
        for node in graph.nodes
    )


def test_ops_dcnv3_calls_the_operator():
    inputs = make_inputs(1, 4, 5, 2, 4, dtype=torch.float32)
    args = kernel_args(3, 1, 1, 1, 2, 4, 1.0)
    for backend in ("auto", "cpu"):
        if backend == "cpu" and load_dcnv3_op("cpu") is None:
            continue
        graph = make_fx(lambda a, b, c: ops.dcnv3(a, b, c, *args, backend=backend))(*inputs).graph
        assert op_count(graph, torch.ops.cityscapes_seg.dcnv3.default) == 1, backend
    graph = make_fx(lambda a, b, c: ops.dcnv3(a, b, c, *args, backend="torch"))(*inputs).graph
    assert op_count(graph, torch.ops.cityscapes_seg.dcnv3.default) == 0


def test_public_op_names():
    assert OP_NAME == "cityscapes_seg::dcnv3" and BACKWARD_OP_NAME == "cityscapes_seg::dcnv3_backward"
    assert torch.ops.cityscapes_seg.dcnv3.default is dcnv3_op._opoverload


# ------------------------------------------------------------------------------------------ CUDA


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_operator_equals_the_cpu_torch_core(dtype):
    inputs = make_inputs(2, 9, 11, 4, 16, dtype=dtype, seed=60)
    args = kernel_args(3, 1, 1, 1, 4, 16, 1.0)
    got = dcnv3_op(*(t.cuda() for t in inputs), *args)
    assert got.device.type == "cuda" and got.dtype == dtype
    expected = dcnv3_core_torch(*(t.double() for t in inputs), *args)
    assert rel_err(got.cpu().double(), expected) <= (1e-5 if dtype == torch.float32 else 1e-2)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_gradcheck_fp64():
    assert torch.autograd.gradcheck(lambda a, b, c: dcnv3_op(a, b, c, *GRADCHECK_ARGS), gradcheck_inputs("cuda"))


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_opcheck():
    inp, off, msk = (t.detach().float() for t in gradcheck_inputs("cuda"))
    torch.library.opcheck(dcnv3_op, (inp, off, msk, *GRADCHECK_ARGS))
    grad_out = torch.randn(1, 3, 4, 6, device="cuda")
    torch.library.opcheck(dcnv3_backward_op, (inp, off, msk, *GRADCHECK_ARGS, grad_out))


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("core_name", ["compiled", "torch core"])
def test_cuda_graph_capture_replays_the_operator(monkeypatch, core_name):
    if core_name == "compiled":
        assert load_dcnv3_op("cuda") is not None, dcnv3_op_error("cuda")
    else:
        monkeypatch.setitem(compiled._results, "dcnv3_cuda", (None, "switched off by the test"))
    args = kernel_args(3, 1, 1, 1, 4, 16, 1.0)
    static = [t.float().cuda() for t in make_inputs(2, 9, 11, 4, 16, seed=61)]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        dcnv3_op(*static, *args)  # warm up outside the capture (loads the op, fills the allocator's pool)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = dcnv3_op(*static, *args)
    fresh = make_inputs(2, 9, 11, 4, 16, seed=62)
    for target, source in zip(static, fresh, strict=True):
        target.copy_(source.float())
    graph.replay()
    torch.cuda.synchronize()
    assert rel_err(captured.cpu().double(), dcnv3_core_torch(*fresh, *args)) <= 1e-5


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_dcnv3_module_compiled_with_inductor_equals_eager(dtype):
    torch.manual_seed(65)
    module = DCNv3(channels=64, group=4).eval().to("cuda", dtype)
    compiled_module = torch.compile(module, fullgraph=True)
    gen = torch.Generator().manual_seed(66)
    with torch.no_grad():
        for _ in range(2):
            x = torch.randn(2, 16, 24, 64, generator=gen).to("cuda", dtype)
            got, expected = compiled_module(x), module(x)
            assert got.dtype == dtype
            assert rel_err(got.double(), expected.double()) <= (1e-4 if dtype == torch.float32 else 3e-2)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_tiny_segmentor_compiles_and_exports_with_the_op(tiny_t_fixture):
    torch.manual_seed(63)
    model = build_segmentor(tiny_t_fixture["config"], device="cuda")
    compiled_model = torch.compile(model, backend="aot_eager", fullgraph=True)
    gen = torch.Generator().manual_seed(64)
    with torch.no_grad():
        for _ in range(2):
            x = torch.randn(1, 3, 64, 96, generator=gen).cuda()
            assert rel_err(compiled_model(x), model(x)) <= 1e-4
    exported = torch.export.export(model, (x,))
    assert op_count(exported.graph, torch.ops.cityscapes_seg.dcnv3.default) == dcnv3_layers(model)
