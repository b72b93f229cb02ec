"""The per-pixel class decision of a class-score map: ``decode_scores`` -> (train ids, confidence), the
per-label histogram of the result: ``label_histogram`` -> (pixels, summed confidence), and the last step of
decoding a grey label PNG for the evaluator: ``png_unfilter``.

On the CPU a compiled op (``kernels/score_decode``) does it in one pass over the scores: from logits, the
winner is the highest logit and its probability is ``1 / sum_c exp(l_c - l_max)``, so the full-resolution
softmax is never materialised (for a released 150-class head at 2048x1024 that is 1.2 GB and ~2 s on two
cores; see ``docs/benchmarks.md``). It is built and found like the DCNv3 op (``extension.py``): by
``pip install`` as ``cityscapes_seg_ros._score_decode_cpu``, else on first use (cached), and
``CITYSCAPES_SEG_DCNV3_BUILD=0`` switches it off too. Elsewhere (GPU tensors, no compiled op) the same
decision is made with torch ops: softmax, then max over the classes.

The winner is the first of equal maxima, as ``torch.max``. From logits the compiled op compares logits, the
torch path softmax probabilities; they can differ only where two logits are so close (well under 1e-6
relative) that their probabilities round to the same float.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from ..labels import IGNORE_TRAIN_ID, NUM_TRAIN_CLASSES
from .extension import _build_mode, _build_root, _cpu_flags, source_digest

__all__ = ["DECODE_BACKENDS", "decode_scores", "label_histogram", "load_score_decode_op", "png_unfilter"]

log = logging.getLogger(__name__)

DECODE_BACKENDS = ("auto", "cpu", "torch")
_SOURCE = "score_decode_cpu.cpp"
_EXTRA_CFLAGS = ["-fno-trapping-math"]  # lets GCC vectorise the comparisons (setup.py uses the same flags)

_lock = threading.Lock()
_state: dict[str, object] = {}  # "module": the loaded op or None once tried, "error": why it is None


def _source_dir() -> Path | None:
    for folder in (
        Path(__file__).resolve().parents[2] / "kernels" / "score_decode",  # source tree / editable install
        Path(sys.prefix) / "share" / "cityscapes_seg_ros" / "kernels" / "score_decode",
    ):
        if (folder / _SOURCE).is_file():
            return folder
    return None


def _prebuilt(src: Path) -> ModuleType | None:
    try:
        module = importlib.import_module("cityscapes_seg_ros._score_decode_cpu")
    except ImportError:
        return None
    return module if getattr(module, "source_digest", None) == source_digest(src) else None


def _jit_build(src: Path) -> ModuleType:
    from torch.utils import cpp_extension

    cflags, ldflags = _cpu_flags()
    cflags = cflags + _EXTRA_CFLAGS
    key = hashlib.sha1(repr((source_digest(src), cflags, ldflags, torch.__version__, sys.version_info[:2])).encode())
    name = f"csr_score_decode_cpu_{key.hexdigest()[:12]}"
    build_dir = _build_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(name=name, sources=[str(src / _SOURCE)], extra_cflags=cflags, extra_ldflags=ldflags,
                              build_directory=str(build_dir), verbose=False)  # fmt: skip


def load_score_decode_op() -> ModuleType | None:
    """The compiled CPU op (built on first use when the install did not build it), or None with one log line."""
    with _lock:
        if "module" in _state:
            return _state["module"]  # type: ignore[return-value]
        module, reason = None, None
        src = _source_dir()
        if _build_mode() == "off":
            reason = "compiled ops are switched off (CITYSCAPES_SEG_DCNV3_BUILD)"
        elif src is None:
            reason = "kernels/score_decode sources not found"
        else:
            try:
                module = _prebuilt(src) or _jit_build(src)
            except Exception as exc:  # a failed build falls back to torch ops, never breaks inference
                reason = f"build failed: {type(exc).__name__}: {str(exc).strip()[-1000:]}"
        if module is None:  # a failed build deserves a warning; a switched-off one does not
            (log.warning if reason.startswith("build failed") else log.info)(
                "compiled score decode op unavailable (%s); using torch ops", reason)
        _state["module"], _state["error"] = module, reason
        return module


def _decode_torch(scores: torch.Tensor, from_logits: bool, num_valid: int, ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
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
        module = load_score_decode_op()
    if backend == "cpu" and module is None:
        why = _state.get("error") if scores.device.type == "cpu" else "it takes CPU tensors only"
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
    module = load_score_decode_op()
    if module is not None:
        counts, sums = module.label_histogram(torch.from_numpy(flat), None if weights is None else torch.from_numpy(weights))
        return counts.numpy(), sums.numpy()
    counts = np.bincount(flat, minlength=256)
    return counts, np.zeros(256) if weights is None else np.bincount(flat, weights=weights, minlength=256)


def png_unfilter(filtered: bytes, height: int, width: int, bit_depth: int) -> np.ndarray | None:
    """The samples [H, W] (uint8 for 8 bits, uint16 for 16) of a grey, non-interlaced PNG from its inflated
    IDAT stream; None where the compiled op is unavailable. ValueError for an unknown filter type or a stream
    of the wrong length."""
    module = load_score_decode_op()
    if module is None:
        return None
    try:
        samples = module.png_unfilter(filtered, height, width, bit_depth).numpy()
    except RuntimeError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    return samples.view(np.uint16) if bit_depth == 16 else samples
