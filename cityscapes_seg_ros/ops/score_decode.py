"""The per-pixel class decision of a class-score map: ``decode_scores`` -> (train ids, confidence); the same
decision on the bilinear resize of low-resolution logits without making the resized logits: ``decode_logits``;
the per-label histogram of the result: ``label_histogram`` (numpy) and ``tensor_label_histogram`` (any device).

On the CPU a compiled op (``kernels/score_decode``) does it in one pass over the scores: from logits, the
winner is the highest logit and its probability is ``1 / sum_c exp(l_c - l_max)``, so the full-resolution
softmax is never materialised (for a released 150-class head at 2048x1024 that is 1.2 GB and ~2 s on two
cores; see ``docs/benchmarks.md``). On CUDA tensors the CUDA op (``score_decode_cuda``) does the same, from the
same per-pixel source (``score_decode_pixel.h``). They are loaded like every compiled op (``compiled.py``:
built by ``pip install`` as ``cityscapes_seg_ros._score_decode_cpu`` / ``_score_decode_cuda``, else on first
use; ``CITYSCAPES_SEG_COMPILED_OPS=off`` switches them off). Without them the same decision is made with torch
ops (``decode_logits``: in bands of rows for large maps, so memory stays bounded). The arguments are checked
here, once; the ops trust them.

The winner is the first of equal maxima, as ``torch.max``. From logits the compiled ops compare logits, the
torch path of ``decode_scores`` softmax probabilities; they can differ only where two logits are so close (well
under 1e-6 relative) that their probabilities round to the same float.

``decode_logits`` interpolates with ATen's formulas and order, so its logits are bit-identical to
``F.interpolate(..., mode="bilinear", align_corners=False)`` and the decision is the one made on them. Which
rounding torch's resize uses depends on its build (its AVX2 / AVX512 CPU kernels and its CUDA kernels fuse
``a*b + c`` into one rounding, its baseline CPU kernels do not); a small resize, compared once per device type,
tells which (``torch_resize_fuses``). Known exception: for outputs narrower than about 100 columns torch's CPU
kernel takes another path whose last bits differ (a decision can then differ where two logits are within an
ulp); camera frames are far wider.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from ..labels import IGNORE_TRAIN_ID, NUM_TRAIN_CLASSES
from . import compiled

__all__ = [
    "CUDA_OP_NAME",
    "DECODE_BACKENDS",
    "OP_NAME",
    "decode_logits",
    "decode_scores",
    "label_histogram",
    "tensor_label_histogram",
    "torch_resize_fuses",
]

log = logging.getLogger(__name__)

DECODE_BACKENDS = ("auto", "cpu", "cuda", "torch")
OP_NAME = "score_decode_cpu"
CUDA_OP_NAME = "score_decode_cuda"
_OP_BY_DEVICE = {"cpu": OP_NAME, "cuda": CUDA_OP_NAME}
# The torch path of decode_logits: F.interpolate of the whole map up to this many resized logits (256 MB of float32;
# 19 classes at 2048x1024 is 40M), else bands of rows of at most _FALLBACK_BAND_ELEMENTS each (8 MB of float32).
_FALLBACK_WHOLE_ELEMENTS = 1 << 26
_FALLBACK_BAND_ELEMENTS = 1 << 21


def _check_labels(num_valid: int, ignore: int, caller: str) -> None:
    if not 0 <= num_valid <= 255 or not 0 <= ignore <= 255:
        raise ValueError(f"{caller}: num_valid {num_valid} and ignore {ignore} must be in [0, 255]")


def _compiled_op(tensor: torch.Tensor, backend: str, caller: str):
    """The compiled op for ``tensor``'s device, or None for the torch path; RuntimeError when ``backend`` asks
    for an op that is unavailable."""
    if backend not in DECODE_BACKENDS:
        raise ValueError(f"{caller}: unknown backend {backend!r}; choose one of {', '.join(DECODE_BACKENDS)}")
    device = tensor.device.type
    if backend == "torch":
        return None
    if backend in ("cpu", "cuda") and backend != device:
        raise RuntimeError(f"{caller}: backend {backend!r} takes {backend.upper()} tensors, got {device} ones")
    name = _OP_BY_DEVICE.get(device)
    module = None if name is None else compiled.load(name)
    if backend != "auto" and module is None:
        raise RuntimeError(
            f"compiled score decode op unavailable for {device} tensors: {compiled.unavailable_reason(name)}"
        )
    return module


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
    ``backend``: "auto" (the compiled op of the scores' device when available, else torch), "cpu" / "cuda"
    (that compiled op; RuntimeError when it is unavailable) or "torch".
    """
    if scores.dim() != 3 or scores.shape[0] < 1:
        raise ValueError(f"decode_scores: scores must be [C, H, W] with C >= 1, got {tuple(scores.shape)}")
    _check_labels(num_valid, ignore, "decode_scores")
    module = _compiled_op(scores, backend, "decode_scores")
    if module is None:
        return _decode_torch(scores, from_logits, num_valid, ignore)
    dtype = torch.float32 if scores.device.type == "cpu" or scores.dtype == torch.float64 else scores.dtype
    return module.decode_scores(scores.to(dtype).contiguous(), bool(from_logits), int(num_valid), int(ignore))


def decode_logits(
    logits: torch.Tensor,
    size: tuple[int, int],
    num_valid: int = NUM_TRAIN_CLASSES,
    ignore: int = IGNORE_TRAIN_ID,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-resolution logits [C, h, w] -> train ids uint8 [H, W] and confidence float32 [H, W] of their bilinear
    resize to ``size`` = (H, W), on the logits' device, without making the [C, H, W] resized logits.

    The same as ``decode_scores(resize_bilinear(logits[None].float(), size)[0], from_logits=True)``: F.interpolate
    (align_corners=False) in float32, bit for bit, then the first of the highest logits and its softmax
    probability. fp16 / bf16 logits are read as float32. ``backend`` as for ``decode_scores``. The reference is
    the resize of contiguous (NCHW) logits: torch's channels-last resize rounds differently in the last bit.
    """
    if logits.dim() != 3 or min(logits.shape) < 1:
        raise ValueError(f"decode_logits: logits must be [C, h, w] with C, h, w >= 1, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"decode_logits: logits must be floating point, got {logits.dtype}")
    if len(size) != 2 or not all(isinstance(n, int) and n >= 1 for n in size):
        raise ValueError(f"decode_logits: size must be two ints (height, width) >= 1, got {size!r}")
    _check_labels(num_valid, ignore, "decode_logits")
    height, width = int(size[0]), int(size[1])
    module = _compiled_op(logits, backend, "decode_logits")
    fused = torch_resize_fuses(logits.device)
    if module is None:
        return _decode_logits_torch(logits.float(), (height, width), num_valid, ignore, fused)
    on_cpu = logits.device.type == "cpu"
    dtype = torch.float32 if on_cpu or logits.dtype == torch.float64 else logits.dtype
    return module.decode_logits(logits.to(dtype).contiguous(), height, width, int(num_valid), int(ignore), fused)


# --------------------------------------------------------------------- the resize as torch computes it


def _mul_add(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, fused: bool) -> torch.Tensor:
    """a * b + c in float32, rounded once when ``fused`` (the product of two floats is exact in float64)."""
    if fused:
        return (a.double() * b.double() + c.double()).float()
    return a * b + c


def _axis_taps(input_size: int, output_size: int, fused: bool, device: torch.device) -> tuple[torch.Tensor, ...]:
    """first, second (int64 [out]) and their weights (float32 [out]): ATen's source taps along one axis."""
    index = torch.arange(output_size, device=device)
    if input_size == output_size:
        return index, index, torch.ones(output_size, device=device), torch.zeros(output_size, device=device)
    scale = torch.tensor(input_size, dtype=torch.float32) / torch.tensor(output_size, dtype=torch.float32)
    half = torch.tensor(-0.5, device=device)
    position = _mul_add(scale.to(device), index.float() + 0.5, half, fused).clamp_min(0.0)
    first = position.long().clamp_max(input_size - 1)
    weight_second = (position - first.float()).clamp(0.0, 1.0)
    second = torch.where(first < input_size - 1, first + 1, first)
    return first, second, 1.0 - weight_second, weight_second


def _combine(first: torch.Tensor, second: torch.Tensor, w_first: torch.Tensor, w_second, fused: bool) -> torch.Tensor:
    return _mul_add(first, w_first, second * w_second, fused)


def _resize_rows(logits: torch.Tensor, rows: tuple, columns: tuple, fused: bool) -> torch.Tensor:
    """Rows of the resize of float32 logits [C, h, w]: ``rows`` the taps of those output rows -> [C, n, W]. The
    width pass is made once for each input row that the output rows use (consecutive output rows share them)."""
    top, bottom = int(rows[0].min()), int(rows[1].max())
    band = logits[:, top : bottom + 1]
    width_pass = _combine(band[:, :, columns[0]], band[:, :, columns[1]], columns[2], columns[3], fused)
    upper, lower = width_pass[:, rows[0] - top], width_pass[:, rows[1] - top]
    return _combine(upper, lower, rows[2][:, None], rows[3][:, None], fused)


def _resize_torch(logits: torch.Tensor, size: tuple[int, int], fused: bool) -> torch.Tensor:
    rows = _axis_taps(logits.shape[1], size[0], fused, logits.device)
    columns = _axis_taps(logits.shape[2], size[1], fused, logits.device)
    return _resize_rows(logits.float(), rows, columns, fused)


_fuses_by_device: dict[str, bool] = {}


def torch_resize_fuses(device: torch.device | str) -> bool:
    """Whether torch's bilinear resize on ``device``'s type rounds ``a*b + c`` once (fused multiply-add): found
    once per device type by comparing a small resize of each kind with F.interpolate."""
    kind = torch.device(device).type
    if kind not in _fuses_by_device:
        values = torch.randn(2, 7, 9, generator=torch.Generator().manual_seed(0)).mul(4.0).to(kind)
        size = (13, 160)  # >= 100 columns: narrower outputs take another path in ATen's CPU kernel
        expected = F.interpolate(values[None], size=size, mode="bilinear", align_corners=False)[0]
        matching = [fused for fused in (True, False) if torch.equal(_resize_torch(values, size, fused), expected)]
        if not matching:
            log.warning(
                "torch's bilinear resize on %s rounds like neither known arithmetic; decode_logits assumes fused "
                "multiply-adds (its logits may differ from F.interpolate's in the last bit)",
                kind,
            )
        _fuses_by_device[kind] = matching[0] if matching else True
    return _fuses_by_device[kind]


def _decode_logits_torch(
    logits: torch.Tensor, size: tuple[int, int], num_valid: int, ignore: int, fused: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """decode_logits with torch ops: F.interpolate and the decision on the whole map while it is small, else in
    bands of output rows (at most ~_FALLBACK_BAND_ELEMENTS resized logits) interpolated as torch does."""
    channels = logits.shape[0]
    height, width = size
    if channels * height * width <= _FALLBACK_WHOLE_ELEMENTS:
        values = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
        best, winner = values.max(dim=0)
        confidence = 1.0 / torch.exp(values - best).sum(dim=0)
        return torch.where(winner < num_valid, winner, ignore).to(torch.uint8), confidence
    rows = _axis_taps(logits.shape[1], height, fused, logits.device)
    columns = _axis_taps(logits.shape[2], width, fused, logits.device)
    labels = torch.empty(size, dtype=torch.uint8, device=logits.device)
    confidence = torch.empty(size, dtype=torch.float32, device=logits.device)
    band = max(1, _FALLBACK_BAND_ELEMENTS // (channels * width))
    for top in range(0, height, band):
        part = slice(top, min(height, top + band))
        values = _resize_rows(logits, tuple(t[part] for t in rows), columns, fused)
        best, winner = values.max(dim=0)
        labels[part] = torch.where(winner < num_valid, winner, ignore).to(torch.uint8)
        confidence[part] = 1.0 / torch.exp(values - best).sum(dim=0)
    return labels, confidence


# -------------------------------------------------------------------------------------------- histograms


def label_histogram(labels: np.ndarray, confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per label value (0..255, int64 [256]) and summed confidence per value (float64 [256]; zeros
    without ``confidence``) of a uint8 label image: ``tensor_label_histogram`` on numpy arrays (no copy)."""
    flat = np.ascontiguousarray(labels, dtype=np.uint8).reshape(-1)
    weights = None if confidence is None else np.ascontiguousarray(confidence, dtype=np.float32).reshape(-1)
    if weights is not None and weights.size != flat.size:
        raise ValueError(f"label_histogram: {weights.size} confidence values for {flat.size} labels")
    counts, sums = tensor_label_histogram(
        torch.from_numpy(flat), None if weights is None else torch.from_numpy(weights)
    )
    return counts.numpy(), sums.numpy()


def tensor_label_histogram(
    labels: torch.Tensor, confidence: torch.Tensor | None = None, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``label_histogram`` of a uint8 label tensor on its own device: pixels per label (int64 [256]) and summed
    confidence (float64 [256]), so statistics need no copy of the image to the host. On CUDA one pass of the
    CUDA op (per-block counts, then atomic adds: the float64 sums may differ between runs in the last bits);
    else the CPU op, or torch.bincount. ``backend`` as for ``decode_scores``."""
    if labels.dtype != torch.uint8:
        raise ValueError(f"tensor_label_histogram: labels must be uint8, got {labels.dtype}")
    if confidence is not None and confidence.numel() != labels.numel():
        raise ValueError(f"tensor_label_histogram: {confidence.numel()} confidence values for {labels.numel()} labels")
    module = _compiled_op(labels, backend, "tensor_label_histogram")
    flat = labels.reshape(-1).contiguous()
    weights = None if confidence is None else confidence.reshape(-1).float().contiguous()
    if module is not None:
        return module.label_histogram(flat, weights)
    index = flat.long()
    counts = torch.bincount(index, minlength=256)
    if weights is None:
        return counts, torch.zeros(256, dtype=torch.float64, device=labels.device)
    return counts, torch.bincount(index, weights=weights.double(), minlength=256)
