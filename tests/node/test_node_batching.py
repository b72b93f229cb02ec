"""Several cameras' frames through one forward (``FrameProcessor.process_batch``, ``batch_groups``), without ROS:
each frame's result equals what it gets alone; on a GPU also with CUDA graphs and pinned transfers."""

import copy

import numpy as np
import pytest
import torch
from support.conv_segmentor import ConvSegmentor

from cityscapes_seg_ros import build_segmentor
from cityscapes_seg_ros.node.params import PARAMETERS, NodeSettings
from cityscapes_seg_ros.node.pipeline import DevicePredictor, FrameProcessor, batch_groups

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ALL_OUTPUTS = {"labels", "color", "overlay", "confidence", "statistics"}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def settings(**values) -> NodeSettings:
    defaults = {spec.name: spec.default for spec in PARAMETERS}
    return NodeSettings.from_values({**defaults, "inference_size": [64, 32], **values})


@pytest.fixture(scope="module")
def tiny_model(tiny_t_fixture):
    """The tiny InternImage-T-like model with a 19-class head, random weights, DCNv3 in torch ops."""
    config = copy.deepcopy(tiny_t_fixture["config"])
    config["decode_head"]["num_classes"] = 19
    config.get("auxiliary_head", {}).update(num_classes=19)
    model = build_segmentor(config, None, "cpu", dcnv3_backend="torch").eval()
    return model


class BatchRecorder:
    """Records the batch size of every forward of a model (a forward pre-hook on its backbone, which the node's
    ``head_logits`` path runs without the model's own forward, or on the model where it has none)."""

    def __init__(self, model):
        self.sizes = []
        self._handle = getattr(model, "backbone", model).register_forward_pre_hook(
            lambda module, args: self.sizes.append(args[0].shape[0])
        )

    def close(self):
        self._handle.remove()


def frames(count, height=48, width=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def assert_same_result(batched, alone, what=""):
    np.testing.assert_array_equal(batched.train_ids, alone.train_ids, err_msg=what)
    np.testing.assert_allclose(batched.confidence, alone.confidence, rtol=1e-5, err_msg=what)
    np.testing.assert_array_equal(batched.color, alone.color, err_msg=what)
    np.testing.assert_array_equal(batched.overlay, alone.overlay, err_msg=what)
    np.testing.assert_array_equal(batched.pixel_counts, alone.pixel_counts, err_msg=what)
    np.testing.assert_allclose(batched.confidence_sums, alone.confidence_sums, rtol=1e-5, err_msg=what)


def check_batch_equals_frames_alone(model, device, config, images, wanted):
    processor = FrameProcessor(DevicePredictor(model.to(device), img_scale=(64, 32)))
    recorder = BatchRecorder(model)  # a replayed CUDA graph calls no Python: only eager runs and captures show
    try:
        batched = processor.process_batch(images, config, wanted)
        batch_calls = list(recorder.sizes)
        alone = [processor.process(image, config, outputs) for image, outputs in zip(images, wanted)]
    finally:
        recorder.close()
    assert batch_calls and set(batch_calls) == {len(images)}  # the frames went through the network together
    assert set(recorder.sizes[len(batch_calls) :]) == {1}
    for index, (one, other) in enumerate(zip(batched, alone)):
        assert_same_result(one, other, f"frame {index}")
        assert set(one.timings_ms) == {"preprocess", "inference", "postprocess"}
    return processor


def test_a_batch_of_three_frames_equals_the_three_frames_alone(tiny_model):
    config = settings(max_batch_size=3, overlay_alpha=0.3)
    check_batch_equals_frames_alone(tiny_model, "cpu", config, frames(3), [ALL_OUTPUTS] * 3)


def test_each_frame_of_a_batch_gets_the_outputs_it_asked_for_and_the_class_subset(tiny_model):
    config = settings(max_batch_size=2, classes=["road", "car", "sky"], resize="none")
    wanted = [{"labels", "statistics"}, ALL_OUTPUTS]
    processor = FrameProcessor(DevicePredictor(tiny_model, img_scale=(64, 32)))
    first, second = processor.process_batch(frames(2, seed=1), config, wanted)
    assert first.color is None and first.overlay is None and first.confidence is None
    assert second.color is not None and second.overlay is not None and second.confidence is not None
    assert set(np.unique(first.train_ids)) <= {0, 10, 13, 255}


def test_frames_of_other_sizes_tta_and_slide_mode_are_not_batched():
    shapes = [(48, 64, 3), (32, 64, 3), (48, 64, 3), (48, 64, 3), (32, 64, 3)]
    assert batch_groups(shapes, settings(max_batch_size=2)) == [[0, 2], [1, 4], [3]]
    assert batch_groups(shapes, settings(max_batch_size=8)) == [[0, 2, 3], [1, 4]]
    singles = [[index] for index in range(len(shapes))]
    assert batch_groups(shapes, settings(max_batch_size=1)) == singles
    assert batch_groups(shapes, settings(max_batch_size=8, tta="flip")) == singles
    assert batch_groups(shapes, settings(max_batch_size=8, mode="slide")) == singles


def test_a_batch_refuses_frames_of_different_sizes_and_runs_tta_one_frame_at_a_time(tiny_model):
    processor = FrameProcessor(DevicePredictor(tiny_model, img_scale=(64, 32)))
    mixed = [*frames(1), *frames(1, height=40)]
    with pytest.raises(ValueError, match="frames of one size"):
        processor.process_batch(mixed, settings(max_batch_size=2), [{"labels"}] * 2)
    recorder = BatchRecorder(tiny_model)
    try:
        images = frames(2, seed=2)
        flipped = processor.process_batch(images, settings(max_batch_size=2, tta="flip"), [{"labels"}] * 2)
    finally:
        recorder.close()
    assert recorder.sizes == [1, 1, 1, 1]  # two frames, two augmentations each, one at a time
    alone = processor.process(images[1], settings(tta="flip"), {"labels"})
    np.testing.assert_array_equal(flipped[1].train_ids, alone.train_ids)


@pytest.fixture
def full_fp32_on_gpu():
    """TF32 off: the batch's and the single frame's convolutions may take different algorithms, and TF32's
    rounding (1e-3) would then differ by more than the 1e-5 compared here."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@needs_cuda
def test_on_the_gpu_a_batch_with_cuda_graphs_equals_the_frames_alone_eager(full_fp32_on_gpu):
    model = ConvSegmentor()  # no DCNv3: whether that op can be captured is tested with the op
    images = frames(3, height=32, width=64, seed=5)  # the inference size: no resize, so the CPU input is the same
    config = settings(max_batch_size=3, cuda_graphs=True, overlay_alpha=0.3)
    processor = check_batch_equals_frames_alone(model, "cuda", config, images, [ALL_OUTPUTS] * 3)
    graphs = processor.predictor.graph_forward
    assert graphs.enabled and graphs.held == 2  # batch 3 and batch 1 of the same input size
    assert sorted(key[0][0] for key in graphs.graph_keys) == [1, 3]
    eager_config = settings(max_batch_size=3, cuda_graphs=False, overlay_alpha=0.3)
    eager = [processor.process(image, eager_config, ALL_OUTPUTS) for image in images]
    assert not graphs.enabled and graphs.held == 0  # switched off: graphs dropped
    graphed = processor.process_batch(images, config, [ALL_OUTPUTS] * 3)
    assert graphs.held == 1 and graphs.replays >= 1
    for index, (one, other) in enumerate(zip(graphed, eager)):
        assert_same_result(one, other, f"frame {index}")
    cpu = FrameProcessor(DevicePredictor(ConvSegmentor(), img_scale=(64, 32))).process(images[0], config, ALL_OUTPUTS)
    np.testing.assert_allclose(graphed[0].confidence, cpu.confidence, rtol=1e-4)  # the GPU path segments as the CPU
    assert np.mean(graphed[0].train_ids == cpu.train_ids) > 0.999


@needs_cuda
def test_pinned_upload_and_download_round_trip_fresh_data():
    from cityscapes_seg_ros.node.host_transfer import download, upload

    rng = np.random.default_rng(6)
    first, second = (rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2))
    on_device = [upload(first, torch.device("cuda")), upload(second, torch.device("cuda"))]
    weights = torch.rand(64, 96, device="cuda")
    back_first, back_second, back_weights, none = download([*on_device, weights, None])
    np.testing.assert_array_equal(back_first, first)
    np.testing.assert_array_equal(back_second, second)
    np.testing.assert_array_equal(back_weights, weights.cpu().numpy())
    assert none is None


def test_the_node_gpu_bench_dry_runs_on_the_cpu_and_writes_its_json(tiny_model_files, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    config, checkpoint = tiny_model_files
    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "node_gpu_bench.py"
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--device",
            "cpu",
            "--size",
            "32x64",
            "--model",
            str(config),
            "--checkpoint",
            str(checkpoint),
            "--dcnv3-backend",
            "torch",
            "--cameras",
            "2",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| CUDA graphs | batch | ms per frame |" in result.stdout
    record = json.loads(out.read_text())
    assert [(row["batch"], row["cuda_graphs"]) for row in record["rows"]] == [(1, False), (2, False)]
    assert all(row["ms_per_frame"] > 0 for row in record["rows"]) and record["device"] == "cpu"


def test_a_forward_that_may_be_captured_keeps_no_autocast_weight_cache():
    """Autocast's cache of weight casts is freed when its scope ends: a CUDA graph must not capture it."""
    predictor = DevicePredictor(ConvSegmentor(), precision="bf16")

    def cache_enabled() -> bool:
        with predictor._precision_scope():
            return torch.is_autocast_cache_enabled()

    assert not predictor.graph_forward.enabled and cache_enabled()  # CPU: no graphs, the cache as usual
    predictor.graph_forward.enabled = True  # as on CUDA with cuda_graphs
    assert not cache_enabled()


def test_each_frame_carries_its_own_record_and_settings_are_applied_when_they_change(tiny_model, monkeypatch):
    predictor = DevicePredictor(tiny_model, img_scale=(64, 32))
    processor = FrameProcessor(predictor)
    image = frames(1)[0]
    config = settings(resize="none")
    frame = processor._frame(image, config)
    assert frame.inference_size == (64, 48) and frame.preprocess_s == 0.0  # resize none: the frame's own size
    x = predictor.prepare_frame(frame, frame.inference_size, False)
    assert tuple(x.shape[2:]) == (48, 64) and frame.preprocess_s > 0.0
    assert not hasattr(predictor, "preprocess_s") and not hasattr(predictor, "_device_image")

    processor.process(image, config, {"labels"})
    predictor.mode = "slide"  # a change the settings did not make: the same settings again leave it alone
    result = processor.process(image, config, {"labels"})
    assert predictor.mode == "slide" and result.timings_ms["preprocess"] > 0.0
    assert predictor.img_scale == (64, 32)  # the frame's own size went with the frame, not into the predictor
    processor.process(image, settings(resize="none", overlay_alpha=0.25), {"labels"})
    assert predictor.mode == "whole"  # new settings are applied
