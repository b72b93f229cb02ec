"""Inference follows the official test pipeline: preprocessing, whole/slide, TTA, 150-class argmax."""

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from cityscapes_seg_ros import Predictor, build_segmentor, preprocess, scores_to_train_ids
from cityscapes_seg_ros.segmenter.inference import MS_RATIOS, rescale_size


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from support.fixtures import load_fixture

    fixture = load_fixture("official_tiny_upernet_t_like")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(fixture["checkpoint"], path)
    return build_segmentor(fixture["config"], checkpoint=path, device="cpu")


def random_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "size, scale, expected",
    [
        ((2048, 1024), (2048, 1024), (2048, 1024)),  # Cityscapes frames: unchanged
        ((1000, 500), (2048, 1024), (2048, 1024)),  # upscaled to fit
        ((640, 480), (2048, 1024), (1365, 1024)),  # short edge binds
        ((3000, 1000), (2048, 1024), (2048, 683)),  # long edge binds
        ((2048, 1024), (1024, 512), (1024, 512)),  # ms ratio 0.5
    ],
)
def test_keep_ratio_resize_sizes(size, scale, expected):
    assert rescale_size(*size, scale) == expected


@pytest.mark.parametrize(
    "size, expected",
    [((20000, 1), (2048, 1)), ((1, 20000), (1, 2048)), ((1, 1), (1024, 1024)), ((5000, 2), (2048, 1))],
)
def test_keep_ratio_resize_never_makes_a_side_of_zero_pixels(size, expected):
    assert rescale_size(*size, (2048, 1024)) == expected


@pytest.mark.parametrize("shape", [(1, 20000), (20000, 1), (1, 1)])
@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_extreme_aspect_ratios_and_one_pixel_are_segmented(tiny_model, shape, mode):
    image = random_image(*shape, seed=sum(shape))
    predictor = Predictor(tiny_model, mode=mode, img_scale=(128, 64), crop_size=(32, 64), stride=(21, 43))
    prediction = predictor.predict(image)
    assert prediction.train_ids.shape == shape and prediction.confidence.shape == shape
    x = preprocess(image, (128, 64))
    assert min(x.shape[2:]) >= 1 and max(x.shape[2:]) == (64 if shape == (1, 1) else 128)
    with torch.inference_mode():
        logits = predictor.encode_decode(x)
        expected = scores_to_train_ids(F.interpolate(logits, size=shape, mode="bilinear", align_corners=False))
    np.testing.assert_array_equal(prediction.train_ids, expected[0].numpy())


def test_preprocess_is_rgb_mean_std_at_the_test_scale():
    image = random_image(60, 100)
    x = preprocess(image, scale=(100, 60))
    rgb = image[:, :, ::-1].astype(np.float64)
    expected = (rgb - [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375]
    assert x.shape == (1, 3, 60, 100) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-5)
    resized = preprocess(image, scale=(200, 120))
    assert resized.shape == (1, 3, 120, 200)
    expected_resized = cv2.resize(image, (200, 120), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    np.testing.assert_allclose(resized[0, 0].numpy() * 58.395 + 123.675, expected_resized[:, :, 0], atol=1e-3)


def test_normalisation_is_bit_for_bit_mmcv_imnormalize():
    assert cv2.__version__.startswith("4."), f"OpenCV {cv2.__version__}: the package pins OpenCV 4, as mmcv 1.x ran"
    image = random_image(33, 47, seed=7)
    # mmcv.imnormalize(img, mean, std, to_rgb=True) as the official test pipeline runs it
    expected = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_BGR2RGB)
    cv2.subtract(expected, np.float64([123.675, 116.28, 103.53]).reshape(1, -1), expected)
    cv2.multiply(expected, 1.0 / np.float64([58.395, 57.12, 57.375]).reshape(1, -1), expected)
    assert torch.equal(preprocess(image, scale=(47, 33))[0], torch.from_numpy(expected).permute(2, 0, 1))


def test_flip_is_applied_before_normalisation():
    image = random_image(8, 12)
    assert torch.equal(preprocess(image, (12, 8), flip=True), preprocess(image, (12, 8)).flip(3))


@pytest.mark.parametrize(
    "bad", [np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)]
)
def test_bad_images_are_rejected_clearly(bad):
    with pytest.raises(ValueError):
        preprocess(bad)


def test_whole_mode_is_the_model_on_the_preprocessed_image(tiny_model):
    image = random_image(48, 80)
    predictor = Predictor(tiny_model, img_scale=(80, 48))
    probs = predictor.probabilities(image)
    with torch.inference_mode():
        expected = F.softmax(tiny_model(preprocess(image, (80, 48))), dim=1)
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    scores, from_logits = predictor.scores(image)  # without TTA the decision is taken from the logits
    assert from_logits and scores.shape == probs.shape
    prediction = predictor.predict(image)
    assert prediction.train_ids.shape == (48, 80) and prediction.train_ids.dtype == np.uint8
    np.testing.assert_array_equal(prediction.train_ids, scores_to_train_ids(expected)[0].numpy())
    np.testing.assert_allclose(prediction.confidence, expected.max(1).values[0].numpy(), atol=1e-6)


def test_logits_come_back_at_the_original_image_size(tiny_model):
    image = random_image(50, 70)
    probs = Predictor(tiny_model, img_scale=(140, 100)).probabilities(image)  # runs at 140x100
    assert probs.shape == (1, 150, 50, 70)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 50, 70))


def test_slide_mode_averages_overlapping_windows(tiny_model):
    x = torch.randn(1, 3, 64, 96)
    predictor = Predictor(tiny_model, mode="slide", crop_size=(64, 64), stride=(32, 32))
    got = predictor.encode_decode(x)
    with torch.inference_mode():
        left, right = tiny_model(x[..., :64]), tiny_model(x[..., 32:96])
    expected = torch.zeros(1, 150, 64, 96)
    expected[..., :64] += left
    expected[..., 32:] += right
    expected[..., 32:64] /= 2
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    whole_window = Predictor(tiny_model, mode="slide", crop_size=(64, 96), stride=(10, 10)).encode_decode(x)
    torch.testing.assert_close(whole_window, Predictor(tiny_model).encode_decode(x))


def test_flip_tta_averages_softmax_with_the_unflipped_mirror(tiny_model):
    image = random_image(40, 64, seed=3)
    probs = Predictor(tiny_model, tta="flip", img_scale=(64, 40)).probabilities(image)
    with torch.inference_mode():
        plain = F.softmax(tiny_model(preprocess(image, (64, 40))), 1)
        mirrored = F.softmax(tiny_model(preprocess(image, (64, 40), flip=True)), 1).flip(3)
    torch.testing.assert_close(probs, (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)


def test_ms_flip_uses_the_official_ratios():
    predictor = Predictor(torch.nn.Conv2d(3, 19, 1), tta="ms-flip")
    augs = predictor.augmentations()
    assert len(augs) == 2 * len(MS_RATIOS) == 12
    assert [scale for scale, flip in augs if not flip] == [(int(2048 * r), int(1024 * r)) for r in MS_RATIOS]


def test_150_channel_head_winner_above_18_is_ignore():
    scores = torch.zeros(1, 150, 2, 2)
    scores[0, 3, 0, 0] = 5  # train id 3
    scores[0, 18, 0, 1] = 5  # last Cityscapes class
    scores[0, 19, 1, 0] = 5  # a channel Cityscapes does not use
    scores[0, 149, 1, 1] = 5
    assert scores_to_train_ids(scores)[0].tolist() == [[3, 18], [255, 255]]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_stays_close_to_fp32(tiny_model, precision):
    x = torch.randn(1, 3, 64, 96)
    ref = Predictor(tiny_model).encode_decode(x)
    low = Predictor(tiny_model, precision=precision).encode_decode(x)
    assert low.dtype == torch.float32
    assert ((low - ref).norm() / ref.norm()).item() < 5e-2


def test_bad_settings_are_rejected(tiny_model):
    for kwargs in ({"precision": "fp8"}, {"mode": "tiles"}, {"tta": "rotate"}, {"stride": (0, 1)}):
        with pytest.raises(ValueError):
            Predictor(tiny_model, **kwargs)
    with pytest.raises(ValueError, match="unknown device"):
        Predictor(tiny_model, device="tpu")
