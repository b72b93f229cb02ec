"""The per-pixel class decision (``ops.decode_scores``): the compiled CPU op against the torch ops it replaces."""

import shutil

import numpy as np
import pytest
import torch

from cityscapes_seg_ros.ops import compiled
from cityscapes_seg_ros.ops.op_records import OPS, SWITCH_ENV, read_switch
from cityscapes_seg_ros.ops.score_decode import OP_NAME, decode_scores, label_histogram


@pytest.fixture(scope="module")
def compiled_op():
    switch = read_switch()
    if switch.mode == "off":
        pytest.skip(f"compiled ops switched off: {switch.setting}")
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler on PATH: the compiled score decode op cannot be built")
    module = compiled.load(OP_NAME)
    assert module is not None, f"score decode op build failed: {compiled.unavailable_reason(OP_NAME)}"
    return module


def torch_decision(scores, from_logits):
    probs = torch.softmax(scores, dim=0) if from_logits else scores
    confidence, winner = probs.max(dim=0)
    return torch.where(winner < 19, winner, 255).to(torch.uint8), confidence


@pytest.mark.parametrize("classes, height, width", [(19, 37, 61), (150, 24, 50), (1, 5, 7), (3, 1, 1), (19, 33, 512)])
def test_compiled_decision_from_logits_equals_softmax_then_max(compiled_op, classes, height, width):
    generator = torch.Generator().manual_seed(classes * 1000 + height)
    logits = torch.randn(classes, height, width, generator=generator) * 6
    labels, confidence = decode_scores(logits, from_logits=True, backend="cpu")
    expected_labels, expected_confidence = torch_decision(logits, True)
    assert labels.dtype == torch.uint8 and confidence.dtype == torch.float32
    assert labels.shape == confidence.shape == (height, width)
    assert torch.equal(labels, expected_labels)
    assert ((confidence - expected_confidence).abs() / expected_confidence).max().item() <= 1e-6


def test_compiled_decision_from_probabilities_is_exact(compiled_op):
    probs = torch.softmax(torch.randn(150, 40, 70, generator=torch.Generator().manual_seed(3)) * 4, dim=0)
    labels, confidence = decode_scores(probs, from_logits=False, backend="cpu")
    expected_labels, expected_confidence = torch_decision(probs, False)
    assert torch.equal(labels, expected_labels)
    assert torch.equal(confidence, expected_confidence)


def test_unused_head_channels_become_ignore_and_ties_go_to_the_first_class(compiled_op):
    logits = torch.zeros(150, 1, 4)
    logits[20, 0, 0] = 5.0  # a channel of the 150-class head that Cityscapes does not use wins
    logits[7, 0, 1] = logits[18, 0, 1] = 3.0  # a tie: the lower class wins, as torch.max
    logits[0, 0, 2] = -1.0  # all others tie at 0: class 1
    logits[4, 0, 3], logits[9, 0, 3] = 1000.0, -1000.0  # far outside exp's range: probability 1, no overflow
    for backend in ("cpu", "torch"):
        labels, confidence = decode_scores(logits, from_logits=True, backend=backend)
        assert labels[0].tolist() == [255, 7, 1, 4], backend
        assert torch.isfinite(confidence).all() and confidence[0, 3].item() == pytest.approx(1.0)
        torch.testing.assert_close(confidence, torch.softmax(logits, 0).amax(0), rtol=1e-6, atol=0)


def test_any_layout_and_precision_is_accepted(compiled_op):
    logits = torch.randn(19, 30, 20, generator=torch.Generator().manual_seed(5))
    expected = decode_scores(logits, from_logits=True, backend="cpu")
    transposed = logits.transpose(1, 2).contiguous().transpose(1, 2)  # same values, other strides
    assert torch.equal(decode_scores(transposed, from_logits=True, backend="cpu")[0], expected[0])
    half = logits.half()
    labels, _ = decode_scores(half, from_logits=True, backend="cpu")
    assert torch.equal(labels, torch_decision(half.float(), True)[0])


def test_bad_arguments_are_rejected_clearly():
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        decode_scores(torch.zeros(4, 5), from_logits=True)
    with pytest.raises(ValueError, match="unknown backend"):
        decode_scores(torch.zeros(2, 4, 5), from_logits=True, backend="gpu")
    with pytest.raises(ValueError, match="num_valid"):
        decode_scores(torch.zeros(2, 4, 5), from_logits=True, num_valid=300)


@pytest.mark.parametrize("use_compiled_op", [True, False], ids=["compiled", "numpy"])
def test_label_histogram_counts_pixels_and_sums_confidence_per_label(compiled_op, monkeypatch, use_compiled_op):
    if not use_compiled_op:
        monkeypatch.setenv(SWITCH_ENV, "off")
        monkeypatch.setattr(compiled, "_results", {})  # as in a process started with the switch off
    rng = np.random.default_rng(11)
    labels = rng.choice(np.array([0, 3, 18, 255], np.uint8), size=(301, 517))  # more than one chunk of pixels
    confidence = rng.random(labels.shape, dtype=np.float32)
    counts, sums = label_histogram(labels, confidence)
    assert counts.dtype == np.int64 and sums.dtype == np.float64 and counts.shape == sums.shape == (256,)
    np.testing.assert_array_equal(counts, np.bincount(labels.ravel(), minlength=256))
    np.testing.assert_allclose(sums, np.bincount(labels.ravel(), weights=confidence.ravel(), minlength=256), rtol=1e-12)
    counts_only, zeros = label_histogram(labels[::2, ::3])  # any strides; no confidence
    np.testing.assert_array_equal(counts_only, np.bincount(labels[::2, ::3].ravel(), minlength=256))
    assert not zeros.any()
    with pytest.raises(ValueError, match="confidence values"):
        label_histogram(labels, confidence[1:])


def test_the_op_built_at_install_is_used_only_while_its_digest_matches(compiled_op):
    try:
        import cityscapes_seg_ros._score_decode_cpu as installed
    except ImportError:
        pytest.skip("installed without building the op (isolated build): it is built just in time instead")
    current = OPS[OP_NAME].digest(compiled.kernels_root())
    assert (compiled_op is installed) == (getattr(installed, "source_digest", None) == current)
