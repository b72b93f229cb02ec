"""graph_forward.GraphForward: eager fallback, the switch, the cache of shapes (on the CPU, with the capture
step emulated on the host), and real CUDA graphs against eager on a GPU."""

import copy
import logging

import pytest
import torch
from support.conv_segmentor import ConvSegmentor

from cityscapes_seg_ros import build_segmentor
from cityscapes_seg_ros.node.graph_forward import CapturedForward, GraphForward
from cityscapes_seg_ros.segmenter.inference import Predictor

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class CountingForward:
    """A small convolution whose calls are counted; ``fail_on_call`` makes that call raise (a capture failing)."""

    def __init__(self, device="cpu", fail_on_call=None):
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 5, 3, padding=1).to(device).eval()
        self.calls, self.fail_on_call = 0, fail_on_call

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("operation not permitted when stream is capturing")
        with torch.inference_mode():
            return self.conv(x) * 2.0


class HostReplay:
    """What a CUDA graph does, on the host: replay re-runs the captured call, reading the static input and
    writing the static output in place."""

    def __init__(self, forward, static_input, static_output):
        self.forward, self.static_input, self.static_output = forward, static_input, static_output

    def replay(self):
        with torch.inference_mode():  # the forward's output is an inference tensor, as the model's
            self.static_output.copy_(self.forward(self.static_input))


class HostGraphForward(GraphForward):
    """GraphForward with its one CUDA step (``_capture_graph``) done on the host, so that its cache, switch and
    buffer handling run on a machine without a GPU."""

    capture_device_type = "cpu"

    def _capture_graph(self, x):
        static_input = torch.empty_like(x).copy_(x)
        static_output = self.forward(static_input)
        return CapturedForward(HostReplay(self.forward, static_input, static_output), static_input, static_output)


def test_cpu_inputs_and_the_switch_off_run_eagerly():
    forward = CountingForward()
    graphs = GraphForward(forward)  # the real class: CPU tensors are never captured
    x = torch.randn(1, 3, 8, 12)
    torch.testing.assert_close(graphs(x), forward(x), rtol=0, atol=0)
    assert (graphs.held, graphs.captures, graphs.replays) == (0, 0, 0) and not graphs.uses_graph(x)
    host = HostGraphForward(forward, enabled=False)
    host(x)
    assert (host.held, host.captures) == (0, 0) and not host.uses_graph(x)
    host.enabled = True
    assert host.uses_graph(x)
    host(x)
    assert (host.held, host.captures, host.replays) == (1, 1, 1)


def test_consecutive_inputs_each_get_their_own_output_not_the_static_buffer():
    forward = CountingForward()
    graphs = HostGraphForward(forward)
    first, second = torch.randn(2, 3, 8, 12), torch.randn(2, 3, 8, 12)
    out_first = graphs(first)
    out_second = graphs(second)
    torch.testing.assert_close(out_first, forward(first), rtol=1e-6, atol=0)
    torch.testing.assert_close(out_second, forward(second), rtol=1e-6, atol=0)
    assert (graphs.captures, graphs.replays) == (1, 2)


def test_a_new_shape_or_dtype_is_captured_once_and_beyond_max_graphs_runs_eagerly(caplog):
    forward = CountingForward()
    graphs = HostGraphForward(forward, max_graphs=2)
    batch1, batch3 = torch.randn(1, 3, 8, 12), torch.randn(3, 3, 8, 12)
    for x in (batch1, batch3, batch1, batch3):
        torch.testing.assert_close(graphs(x), forward(x), rtol=1e-6, atol=0)
    assert graphs.captures == 2 and [key[0] for key in graphs.graph_keys] == [(1, 3, 8, 12), (3, 3, 8, 12)]
    other = torch.randn(1, 3, 16, 24)
    with caplog.at_level(logging.INFO, logger="cityscapes_seg_ros.node.graph_forward"):
        for _ in range(3):
            torch.testing.assert_close(graphs(other), forward(other), rtol=1e-6, atol=0)
    assert graphs.captures == 2 and not graphs.uses_graph(other)
    assert len([r for r in caplog.records if "max_graphs" in r.getMessage()]) == 1  # said once
    graphs.clear()
    assert graphs.held == 0 and graphs.uses_graph(other)
    graphs(other)
    assert graphs.captures == 3 and graphs.graph_keys[0][0] == (1, 3, 16, 24)
    with pytest.raises(ValueError, match="max_graphs"):
        GraphForward(forward, max_graphs=0)


def test_a_failed_capture_is_logged_once_and_that_shape_stays_eager(caplog):
    forward = CountingForward(fail_on_call=1)  # the first call is the capture's
    graphs = HostGraphForward(forward)
    x = torch.randn(1, 3, 8, 12)
    with caplog.at_level(logging.WARNING, logger="cityscapes_seg_ros.node.graph_forward"):
        out = graphs(x)
        graphs(x)
    torch.testing.assert_close(out, forward(x), rtol=1e-6, atol=0)
    assert graphs.held == 0 and not graphs.uses_graph(x)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not permitted when stream is capturing" in warnings[0], warnings
    assert graphs.uses_graph(torch.randn(2, 3, 8, 12))  # other shapes still try


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_replayed_graphs_equal_eager_for_consecutive_inputs_and_a_new_shape_captures_again(precision):
    predictor = Predictor(ConvSegmentor().cuda(), precision=precision)
    graphs = GraphForward(predictor.encode_decode)
    first, second = torch.randn(1, 3, 64, 128, device="cuda"), torch.randn(1, 3, 64, 128, device="cuda")
    out_first = graphs(first)
    out_second = graphs(second)  # a stale static input or output would show here
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if precision == "fp32" else {"rtol": 2e-3, "atol": 2e-3}
    torch.testing.assert_close(out_first, predictor.encode_decode(first), **tolerance)
    torch.testing.assert_close(out_second, predictor.encode_decode(second), **tolerance)
    assert (graphs.held, graphs.captures, graphs.replays) == (1, 1, 2)
    assert out_first.dtype == torch.float32 and not torch.allclose(out_first, out_second)

    batch = torch.randn(2, 3, 64, 128, device="cuda")  # another shape: a second graph
    torch.testing.assert_close(graphs(batch), predictor.encode_decode(batch), **tolerance)
    assert graphs.captures == 2 and [key[0] for key in graphs.graph_keys] == [(1, 3, 64, 128), (2, 3, 64, 128)]
    third = torch.randn(1, 3, 64, 128, device="cuda")  # back to the first graph after the second replayed
    torch.testing.assert_close(graphs(third), predictor.encode_decode(third), **tolerance)
    assert graphs.captures == 2 and graphs.replays == 4


@needs_cuda
def test_the_internimage_model_with_the_compiled_dcnv3_op_is_captured_and_replays_its_eager_logits(tiny_t_fixture):
    from cityscapes_seg_ros.dcnv3.compiled import dcnv3_op_error, load_dcnv3_op

    if load_dcnv3_op("cuda") is None:
        pytest.skip(f"compiled DCNv3 CUDA op unavailable: {dcnv3_op_error('cuda')}")
    config = copy.deepcopy(tiny_t_fixture["config"])
    model = build_segmentor(config, None, "cuda", dcnv3_backend="auto").eval()
    predictor = Predictor(model)
    graphs = GraphForward(predictor.encode_decode)
    inputs = [torch.randn(1, 3, 64, 128, device="cuda") for _ in range(2)]
    outputs = [graphs(x) for x in inputs]
    assert graphs.held == 1, "the capture failed: see the warning logged by cityscapes_seg_ros.node.graph_forward"
    for x, out in zip(inputs, outputs):
        torch.testing.assert_close(out, predictor.encode_decode(x), rtol=1e-4, atol=1e-4)


@needs_cuda
def test_a_forward_that_waits_for_the_host_falls_back_to_eager():
    conv = torch.nn.Conv2d(3, 4, 1).cuda()

    def forward(x):
        y = conv(x)
        return y * float(y.abs().max())  # .item(): not capturable

    graphs = GraphForward(forward)
    x = torch.randn(1, 3, 8, 8, device="cuda")
    torch.testing.assert_close(graphs(x), forward(x))
    assert graphs.held == 0 and not graphs.uses_graph(x)
    torch.testing.assert_close(graphs(x), forward(x))  # and the device still works
