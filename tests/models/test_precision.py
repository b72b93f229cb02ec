"""Precisions keep the answer; the single-augmentation decision takes the low-resolution logits."""

import numpy as np
import pytest
import torch
from support.fixtures import FIXTURES, load_fixture
from torch.nn import functional as F

from cityscapes_seg_ros import Predictor, build_segmentor
from cityscapes_seg_ros.models.layers import FloatLayerNorm, float_island
from cityscapes_seg_ros.ops.score_decode import decode_scores
from cityscapes_seg_ros.segmenter.choices import PRECISIONS
from cityscapes_seg_ros.segmenter.options import ModelOptions
from cityscapes_seg_ros.segmenter.precision import cuda_tf32, precision_scope
from cityscapes_seg_ros.segmenter.precision_check import argmax_agreement, normalized_inputs, smooth_frames

# Measured on these fixtures (random weights: logits with std ~0.6 and a median top-2 margin ~0.2, so near-ties
# are common): bf16 98.8-99.3 %, fp16 99.84-99.90 % of the pixels; nearly every disagreement is a near-tie.
# The bounds leave room for other CPUs' kernels; a trained model's margins are far wider.
MIN_AGREEMENT = {"bf16": 0.985, "fp16": 0.995, "tf32": 0.995}  # TF32 rounds conv/matmul operands as fp16 does


def build_fixture_model(name, tmp_path):
    fixture = load_fixture(name)
    path = tmp_path / f"{name}.pth"
    torch.save(fixture["checkpoint"], path)
    return fixture, build_segmentor(fixture["config"], checkpoint=path, device="cpu")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_fixture_model("official_tiny_upernet_t_like", tmp_path_factory.mktemp("ckpt"))[1]


def random_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", FIXTURES)
def test_low_precision_keeps_the_fp32_class_of_the_pixels(name, precision, tmp_path):
    fixture, model = build_fixture_model(name, tmp_path)
    inputs = [fixture["input"], *normalized_inputs(smooth_frames(2, 96, 192, seed=1))]
    agreement = argmax_agreement(model, inputs, precision, device="cpu")
    assert agreement.pixels == sum(x.shape[2] * x.shape[3] for x in inputs)
    assert agreement.fraction >= MIN_AGREEMENT[precision], agreement.describe()


def test_tf32_on_the_cpu_is_fp32(tiny_model):
    x = torch.randn(1, 3, 64, 96)
    assert torch.equal(Predictor(tiny_model, precision="tf32").encode_decode(x), Predictor(tiny_model).encode_decode(x))


def test_every_precision_is_an_option_and_a_predictor_setting(tiny_model):
    assert PRECISIONS == ("fp32", "tf32", "fp16", "bf16")
    for precision in PRECISIONS:
        assert ModelOptions(checkpoint="none", device="cpu", precision=precision).precision == precision
        assert Predictor(tiny_model, precision=precision).precision == precision
    with pytest.raises(ValueError, match="expected one of fp32, tf32, fp16, bf16"):
        Predictor(tiny_model, precision="fp8")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_layer_norm_statistics_are_taken_in_fp32(dtype):
    norm = FloatLayerNorm(384, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = (torch.randn(2, 5, 384) * 30 + 200).to(dtype)  # large mean: variance in low precision loses digits
    expected = F.layer_norm(x.float(), (384,), norm.weight, norm.bias, 1e-6).to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        got = norm(x)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.equal(norm(x.float()), F.layer_norm(x.float(), (384,), norm.weight, norm.bias, 1e-6))


def test_classifier_and_final_resize_run_in_fp32_under_autocast(tiny_model):
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        head = tiny_model.head_logits(x)
        logits = tiny_model(x)
    assert head.dtype == torch.float32 and head.shape == (1, 150, 16, 24)
    assert logits.dtype == torch.float32 and logits.shape == (1, 150, 64, 96)


@pytest.mark.parametrize("precision, expected", [("tf32", True), ("fp32", False)])
def test_tf32_switches_are_scoped(precision, expected):
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with precision_scope(precision, "cuda"):
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (expected, expected)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(KeyError), cuda_tf32(not before[0]):
        raise KeyError("an error inside the scope still restores the switches")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_channels_last_head_gives_the_same_logits(tmp_path):
    _, model = build_fixture_model("official_tiny_upernet_t_like", tmp_path)
    x = torch.randn(1, 3, 64, 96)
    plain = Predictor(model).encode_decode(x)
    assert not Predictor(model).channels_last  # on the CPU by default: it was slower there
    predictor = Predictor(model, channels_last=True)
    with torch.inference_mode():
        features = model.backbone(x)
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in features)
    assert model.decode_head.conv_seg.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(predictor.encode_decode(x), plain, rtol=1e-5, atol=1e-5)


def old_decision(predictor, image):
    scores, from_logits = predictor.scores(image)
    return decode_scores(scores[0], from_logits)


@pytest.mark.parametrize(
    "image_size, kwargs",
    [
        ((64, 96), {"img_scale": (96, 64)}),  # the network's own size: the head's low-resolution logits
        ((50, 70), {"img_scale": (140, 100)}),  # resized: the logits at the input size, resized again
        ((64, 96), {"img_scale": (96, 64), "tta": "flip"}),
        ((40, 64), {"img_scale": (64, 40), "tta": "ms"}),
        ((64, 96), {"img_scale": (96, 64), "mode": "slide", "crop_size": (32, 64), "stride": (21, 43)}),
        ((64, 96), {"img_scale": (96, 64), "precision": "bf16"}),
    ],
)
def test_decide_is_the_decision_of_the_resized_scores(tiny_model, image_size, kwargs):
    image = random_image(*image_size, seed=sum(image_size))
    predictor = Predictor(tiny_model, **kwargs)
    train_ids, confidence = predictor.decide(image)
    expected_ids, expected_confidence = old_decision(predictor, image)
    assert train_ids.dtype == torch.uint8 and confidence.dtype == torch.float32
    assert train_ids.shape == confidence.shape == image_size
    assert torch.equal(train_ids, expected_ids)
    torch.testing.assert_close(confidence, expected_confidence, rtol=1e-6, atol=1e-7)
    prediction = predictor.predict(image)
    np.testing.assert_array_equal(prediction.train_ids, train_ids.numpy())


def test_decision_at_the_input_size_uses_the_low_resolution_logits(tiny_model):
    predictor = Predictor(tiny_model, img_scale=(96, 64))
    x = torch.randn(1, 3, 64, 96)
    assert predictor.decision_logits(x, (64, 96)).shape == (1, 150, 16, 24)
    assert predictor.decision_logits(x, (50, 70)).shape == (1, 150, 64, 96)
    assert Predictor(tiny_model, mode="slide").decision_logits(x, (64, 96)).shape == (1, 150, 64, 96)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["tf32", "bf16", "fp16"])
def test_cuda_precisions_keep_the_answer(tmp_path, precision):
    fixture, model = build_fixture_model("official_tiny_upernet_t_like", tmp_path)
    inputs = [fixture["input"], *normalized_inputs(smooth_frames(2, 96, 192, seed=1))]
    agreement = argmax_agreement(model.cuda(), inputs, precision, device="cuda")
    assert agreement.fraction >= MIN_AGREEMENT[precision], agreement.describe()
    predictor = Predictor(model, device="cuda", precision=precision)
    assert predictor.channels_last
    image = random_image(64, 96)
    train_ids, confidence = predictor.decide(image)
    assert train_ids.device.type == "cuda" and train_ids.shape == (64, 96)
    expected_ids, expected_confidence = old_decision(predictor, image)
    assert torch.equal(train_ids, expected_ids)
    torch.testing.assert_close(confidence, expected_confidence, rtol=1e-5, atol=1e-6)


def test_a_model_cast_to_bf16_runs_and_its_classifier_gives_fp32_logits(tmp_path):
    # official_model_bench.py times `model.to(torch.bfloat16)`: the classifier's fp32 island met bf16 weights
    _, model = build_fixture_model("official_tiny_upernet_t_like", tmp_path)
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = model.head_logits(x)
        cast = model.to(torch.bfloat16)
        head = cast.head_logits(x.to(torch.bfloat16))
    assert head.dtype == torch.float32 and head.shape == expected.shape
    assert cast.decode_head.conv_seg.weight.dtype == torch.bfloat16  # the island left the module as it was
    relative_error = (head.double() - expected.double()).norm() / expected.double().norm()
    assert relative_error < 0.1, relative_error


def test_the_classifier_island_of_a_bf16_module_computes_in_fp32():
    conv = torch.nn.Conv2d(64, 19, 1).to(torch.bfloat16)
    x = torch.randn(2, 64, 8, 8, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    expected = F.conv2d(x.float(), conv.weight.float(), conv.bias.float())
    torch.testing.assert_close(float_island(conv, x), expected, rtol=1e-6, atol=1e-6)
