"""Does a precision keep the answer? The class each pixel gets in a low precision against fp32.

``argmax_agreement`` runs one model through ``Predictor.encode_decode`` in fp32 and in another precision on the
same inputs and counts the pixels whose winning channel (over all the head's channels, the stricter test: the
150-channel heads map channels 19..149 to one "ignore") is the same. Disagreements are split into near-ties
(the fp32 winner leads the runner-up by less than ``tie_margin`` in logits), which any rounding can flip, and
the rest. ``smooth_frames`` makes camera-like inputs (smooth regions, edges) when no real images are at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional

import cv2
import numpy as np
import torch
from torch import nn

from .inference import Predictor, normalize_bgr


@dataclass(frozen=True)
class Agreement:
    precision: str
    pixels: int
    agreeing: int
    near_ties: int  # disagreeing pixels whose fp32 top-2 margin is below the tie margin

    @property
    def fraction(self) -> float:
        return self.agreeing / self.pixels if self.pixels else 1.0

    def describe(self) -> str:
        wrong = self.pixels - self.agreeing
        return (
            f"{self.precision}: {100 * self.fraction:.3f} % of {self.pixels} pixels agree with fp32 "
            f"({wrong} differ, {self.near_ties} of them near-ties)"
        )


def smooth_frames(count: int, height: int, width: int, seed: int = 0) -> List[np.ndarray]:
    """uint8 BGR [H, W, 3] frames of smooth random regions with edges, like a camera image (not white noise)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        coarse = rng.integers(0, 256, size=(max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
        frame = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST).astype(np.float32)  # edges
        frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=max(1.0, width / 256))  # smooth regions
        frame += rng.normal(0, 4, size=frame.shape).astype(np.float32)  # sensor noise
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def normalized_inputs(frames: Iterable[np.ndarray]) -> List[torch.Tensor]:
    """BGR frames -> the network's normalized [1, 3, H, W] inputs (no resize)."""
    return [torch.from_numpy(normalize_bgr(frame))[None] for frame in frames]


def argmax_agreement(
    model: nn.Module,
    inputs: Iterable[torch.Tensor],
    precision: str,
    device: Optional[str | torch.device] = None,
    channels_last: Optional[bool] = None,
    tie_margin: float = 1e-2,
) -> Agreement:
    """Pixels where ``precision`` picks the fp32 winner, over normalized [N, 3, H, W] ``inputs``."""
    reference = Predictor(model, device=device, precision="fp32", channels_last=channels_last)
    low = Predictor(model, device=device, precision=precision, channels_last=channels_last)
    pixels = agreeing = near_ties = 0
    for x in inputs:
        x = x.to(reference.device)
        ref_logits = reference.encode_decode(x)
        low_logits = low.encode_decode(x)
        top2 = ref_logits.topk(2, dim=1).values
        same = ref_logits.argmax(dim=1) == low_logits.argmax(dim=1)
        tie = (top2[:, 0] - top2[:, 1]) < tie_margin
        pixels += same.numel()
        agreeing += int(same.sum())
        near_ties += int((~same & tie).sum())
    return Agreement(precision, pixels, agreeing, near_ties)
