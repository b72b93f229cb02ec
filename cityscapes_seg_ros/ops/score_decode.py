"""The per-pixel class decision of a class-score map: ``decode_scores`` -> (train ids, confidence), and the
per-label histogram of the result: ``label_histogram`` -> (pixels, summed confidence).

On the CPU a compiled op (``kernels/score_decode``) does it in one pass over the scores: from logits, the
winner is the highest logit and its probability is ``1 / sum_c exp(l_c - l_max)``, so the full-resolution
softmax is never materialised (for a released 150-class head at 2048x1024 that is 1.2 GB and ~2 s on two
cores; see ``docs/benchmarks.md``). It is loaded like every compiled op (``compiled.py``: built by
``pip install`` as ``cityscapes_seg_ros._score_decode_cpu``, else on first use; ``CITYSCAPES_SEG_COMPILED_OPS=off``
switches it off). Elsewhere (GPU tensors, no compiled op) the same decision is made with torch ops: softmax,
then max over the classes. The arguments are checked here, once; the op trusts them.

The winner is the first of equal maxima, as ``torch.max``. From logits the compiled op compares logits, the
torch path softmax probabilities; they can differ only where two logits are so close (well under 1e-6
relative) that their probabilities round to the same float.
"""

from __future__ import annotations

import numpy as np
import torch

from ..labels import IGNORE_TRAIN_ID, NUM_TRAIN_CLASSES
from . import compiled

__all__ = ["DECODE_BACKENDS", "OP_NAME", "decode_scores", "label_histogram"]

DECODE_BACKENDS = ("auto", "cpu", "torch")
OP_NAME = "score_decode_cpu"


def _decode_torch(
    scores: torch.Tensor, from_logits: bool, num_valid: int, ignore: int
) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.softmax(scores.float(), dim=0) if from_logits else scores.float()
    confidence, winner = probs.max(dim=0)
    return torch.where(winner < num_valid, winner, ignore).to(torch.uint8), confidence


def decode_scores(
    scores: torch.Tensor,
    from_logits: bool,
    num_valid: int = NUM_TRAIN_CLASSES,
    ignore: int = IGNORE_TRAIN_ID,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class scores [C, H, W] -> train ids uint8 [H, W] and confidence float32 [H, W], on the scores' device.

    ``from_logits``: the scores are logits (confidence = softmax probability of the winner) rather than
    probabilities (confidence = the winner's score). A winner >= ``num_valid`` (a channel of the 150-class
    head that Cityscapes does not use) becomes ``ignore``, as in ``scores_to_train_ids``.
    ``backend``: "auto" (the compiled op for CPU tensors when available, else torch), "cpu" (the compiled
    op; RuntimeError when it is unavailable) or "torch".
    """
    if backend not in DECODE_BACKENDS:
        raise ValueError(f"decode_scores: unknown backend {backend!r}; choose one of {', '.join(DECODE_BACKENDS)}")
    if scores.dim() != 3 or scores.shape[0] < 1:
        raise ValueError(f"decode_scores: scores must be [C, H, W] with C >= 1, got {tuple(scores.shape)}")
    if not 0 <= num_valid <= 255 or not 0 <= ignore <= 255:
        raise ValueError(f"decode_scores: num_valid {num_valid} and ignore {ignore} must be in [0, 255]")
    module = None
    if backend != "torch" and scores.device.type == "cpu":
        module = compiled.load(OP_NAME)
    if backend == "cpu" and module is None:
        why = compiled.unavailable_reason(OP_NAME) if scores.device.type == "cpu" else "it takes CPU tensors only"
        raise RuntimeError(f"compiled score decode op unavailable for {scores.device} scores: {why}")
    if module is None:
        return _decode_torch(scores, from_logits, num_valid, ignore)
    return module.decode_scores(scores.float().contiguous(), bool(from_logits), int(num_valid), int(ignore))


def label_histogram(labels: np.ndarray, confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per label value (0..255, int64 [256]) and summed confidence per value (float64 [256]; zeros
    without ``confidence``) of a uint8 label image: the compiled op where available, else ``np.bincount``."""
    flat = np.ascontiguousarray(labels, dtype=np.uint8).reshape(-1)
    weights = None if confidence is None else np.ascontiguousarray(confidence, dtype=np.float32).reshape(-1)
    if weights is not None and weights.size != flat.size:
        raise ValueError(f"label_histogram: {weights.size} confidence values for {flat.size} labels")
    module = compiled.load(OP_NAME)
    if module is not None:
        counts, sums = module.label_histogram(
            torch.from_numpy(flat), None if weights is None else torch.from_numpy(weights)
        )
        return counts.numpy(), sums.numpy()
    counts = np.bincount(flat, minlength=256)
    return counts, np.zeros(256) if weights is None else np.bincount(flat, weights=weights, minlength=256)
