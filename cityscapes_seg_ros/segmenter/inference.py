"""Inference around a segmentor, identical to the official mmseg test pipeline.

Pipeline (``configs/_base_/datasets/cityscapes.py``): BGR image -> keep-ratio resize into
2048x1024 (cv2 bilinear) -> [flip] -> BGR->RGB, (x - mean) / std -> model (whole image, or sliding
window) -> logits resized to the original size -> softmax -> [unflip] -> average over the
augmentations -> argmax. With the released 150-channel heads the argmax runs over every channel,
and a winning channel >= 19 means "ignore" (train id 255). Without TTA the decision is taken from the
logits directly (``decide``): the decode head's low-resolution logits go to ``ops.score_decode.decode_logits``
(resize fused with the decision), so neither the full-resolution softmax nor the full-resolution logits exist.
Precisions: ``precision.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ContextManager, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..labels import IGNORE_TRAIN_ID, NUM_TRAIN_CLASSES
from ..models.layers import resize_bilinear
from ..ops.score_decode import decode_logits, decode_scores
from .choices import DEFAULT_INFERENCE_SIZE, MODES, TTA_CHOICES
from .devices import resolve_device
from .precision import check_precision, precision_scope

MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)
MS_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # the official multi-scale test ratios
SLIDE_CROP = (512, 1024)  # (h, w), the training crop
SLIDE_STRIDE = (341, 683)  # (h, w), two-thirds overlap as mmseg's Cityscapes slide configs


def rescale_size(width: int, height: int, scale: Tuple[int, int]) -> Tuple[int, int]:
    """mmcv.imrescale's size: fit (w, h) inside the (long, short) bound, keeping the aspect ratio.

    A side never rounds down to 0 pixels (a 20000x1 image becomes 2048x1, where mmcv fails); every other size
    is mmcv's.
    """
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return max(1, int(width * factor + 0.5)), max(1, int(height * factor + 0.5))


def normalize_bgr(image_bgr: np.ndarray) -> np.ndarray:
    """mmcv.imnormalize with to_rgb=True, written straight into the network's layout: float32 [3, H, W] RGB.

    Bit for bit what mmcv computes (cv2.subtract of the float64 mean, which OpenCV applies in float32, then
    cv2.multiply by the float64 1/std, applied in float64 and rounded to float32), without the [H, W, 3]
    float image and its transpose.
    """
    planes = cv2.split(image_bgr)
    out = np.empty((3, *image_bgr.shape[:2]), np.float32)
    for channel, plane in enumerate(reversed(planes)):  # BGR -> RGB
        np.subtract(plane, np.float32(MEAN_RGB[channel]), out=out[channel], dtype=np.float32)
        np.multiply(
            out[channel], 1.0 / np.float64(STD_RGB[channel]), out=out[channel], dtype=np.float64, casting="unsafe"
        )
    return out


def preprocess(
    image_bgr: np.ndarray, scale: Tuple[int, int] = DEFAULT_INFERENCE_SIZE, flip: bool = False
) -> torch.Tensor:
    """uint8 BGR [H, W, 3] -> normalized [1, 3, h, w] float32 at the test scale."""
    image = check_image(image_bgr)
    height, width = image.shape[:2]
    new_w, new_h = rescale_size(width, height, scale)
    if (new_w, new_h) != (width, height):
        try:
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        except cv2.error as exc:
            raise ValueError(f"cannot resize the {width}x{height} image to {new_w}x{new_h}: {exc.err or exc}") from None
    if flip:
        image = np.ascontiguousarray(image[:, ::-1])
    return torch.from_numpy(normalize_bgr(image)).unsqueeze(0)


def check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected a BGR image of shape [H, W, 3], got {shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"empty image of shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return image


def scores_to_train_ids(scores: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] logits or probabilities -> [N, H, W] uint8 train ids.

    The argmax runs over every channel as in the official model; a winner >= 19 (a channel of the
    150-class head that Cityscapes does not use) becomes 255, ignore.
    """
    winner = scores.argmax(dim=1)
    return torch.where(winner < NUM_TRAIN_CLASSES, winner, IGNORE_TRAIN_ID).to(torch.uint8)


@dataclass
class Prediction:
    train_ids: np.ndarray  # uint8 [H, W], 255 = ignore
    confidence: np.ndarray  # float32 [H, W], probability of the predicted class


# (image_bgr, inference size, flip) -> the network input on the device: ``Predictor.prepare`` or a caller's own
Prepare = Callable[[np.ndarray, Tuple[int, int], bool], torch.Tensor]


class Predictor:
    """Runs a segmentor on BGR images as the official test does, with the chosen mode and TTA."""

    def __init__(
        self,
        model: nn.Module,
        device: Union[str, torch.device, None] = None,
        precision: str = "fp32",
        mode: str = "whole",
        tta: str = "none",
        img_scale: Tuple[int, int] = DEFAULT_INFERENCE_SIZE,
        ms_ratios: Sequence[float] = MS_RATIOS,
        crop_size: Tuple[int, int] = SLIDE_CROP,
        stride: Tuple[int, int] = SLIDE_STRIDE,
        channels_last: Optional[bool] = None,
    ) -> None:
        """``channels_last``: run the decode head channels-last (None: on CUDA devices only, where tensor-core
        convolutions want it; on CPUs it was slower, docs/benchmarks.md). Needs the model's ``set_channels_last``
        (``EncoderDecoder``); other models are left as they are."""
        check_precision(precision)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if tta not in TTA_CHOICES:
            raise ValueError(f"unknown tta {tta!r}; expected one of {', '.join(TTA_CHOICES)}")
        if min(crop_size) < 1 or min(stride) < 1:
            raise ValueError(f"slide crop {crop_size} and stride {stride} must be positive")
        self.device = next(model.parameters()).device if device is None else resolve_device(device)
        self.model = model.to(self.device).eval()
        self.channels_last = self.device.type == "cuda" if channels_last is None else bool(channels_last)
        if hasattr(self.model, "set_channels_last"):
            self.model.set_channels_last(self.channels_last)
        self.precision = precision
        self.mode = mode
        self.tta = tta
        self.img_scale = tuple(img_scale)
        self.ms_ratios = tuple(ms_ratios)
        self.crop_size = tuple(crop_size)
        self.stride = tuple(stride)

    def augmentations(self, inference_size: Optional[Tuple[int, int]] = None) -> List[Tuple[Tuple[int, int], bool]]:
        """(scale, flip) pairs, in mmseg's MultiScaleFlipAug order, around ``inference_size`` (``img_scale``
        unless given)."""
        size = tuple(inference_size or self.img_scale)
        if self.tta in ("ms", "ms-flip"):
            scales = [(int(size[0] * r), int(size[1] * r)) for r in self.ms_ratios]
        else:
            scales = [size]
        flips = (False, True) if self.tta in ("flip", "ms-flip") else (False,)
        return [(scale, flip) for scale in scales for flip in flips]

    def _precision_scope(self) -> ContextManager:
        return precision_scope(self.precision, self.device)

    def network_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Whole mode: the network's own output for normalized [N, 3, h, w] -- the decode head's logits at 1/4 of
        the input for the segmentors of this package (``head_logits``), the model's output for other modules."""
        with torch.inference_mode(), self._precision_scope():
            return getattr(self.model, "head_logits", self.model)(x)

    def encode_decode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized [N, 3, h, w] -> fp32 logits [N, C, h, w] (whole image or sliding window)."""
        if self.mode == "whole":
            return self._to_input_size(self.network_logits(x), x)
        with torch.inference_mode(), self._precision_scope():
            return self._slide(x)

    def _to_input_size(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The head's logits resized to the input in fp32, as ``EncoderDecoder.forward`` does."""
        if not hasattr(self.model, "head_logits"):
            return logits.float()
        with torch.inference_mode():
            return resize_bilinear(logits.float().contiguous(), x.shape[2:])  # the head may be channels-last

    def decision_logits(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """Logits [N, C, h', w'] whose bilinear resize to ``size`` is the official decision's input.

        In whole mode at the network's own input size, the decode head's low-resolution logits (the official
        model resizes them to the input size, which is ``size``: one resize either way); otherwise the logits at
        the input size (``encode_decode``), which the official pipeline resizes a second time.
        """
        if self.mode == "whole" and hasattr(self.model, "head_logits"):
            logits = self.network_logits(x)
            return logits if tuple(x.shape[2:]) == tuple(size) else self._to_input_size(logits, x)
        return self.encode_decode(x)

    def _slide(self, x: torch.Tensor) -> torch.Tensor:
        """mmseg's slide_inference: overlapping crops, logits summed and divided by the overlap count."""
        n, _, height, width = x.shape
        crop_h, crop_w = self.crop_size
        stride_h, stride_w = self.stride
        rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
        cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
        total: Optional[torch.Tensor] = None
        count = x.new_zeros((n, 1, height, width), dtype=torch.float32)
        for row in range(rows):
            for col in range(cols):
                y2 = min(row * stride_h + crop_h, height)
                x2 = min(col * stride_w + crop_w, width)
                y1, x1 = max(y2 - crop_h, 0), max(x2 - crop_w, 0)
                logits = self.model(x[:, :, y1:y2, x1:x2]).float()
                if total is None:
                    total = x.new_zeros((n, logits.shape[1], height, width), dtype=torch.float32)
                total[:, :, y1:y2, x1:x2] += logits
                count[:, :, y1:y2, x1:x2] += 1
        return total / count

    def prepare(self, image_bgr: np.ndarray, scale: Tuple[int, int], flip: bool) -> torch.Tensor:
        """The network input for one augmentation, on the device (subclasses may preprocess there)."""
        return preprocess(image_bgr, scale, flip).to(self.device)

    def probabilities(
        self,
        image_bgr: np.ndarray,
        prepare: Optional[Prepare] = None,
        inference_size: Optional[Tuple[int, int]] = None,
    ) -> torch.Tensor:
        """Softmax averaged over the augmentations, at the image's size: [1, C, H, W] on the device.
        ``prepare``: what makes each augmentation's input (``self.prepare`` unless given); ``inference_size``:
        as in ``augmentations``."""
        height, width = check_image(image_bgr).shape[:2]
        prepare = prepare or self.prepare
        total: Optional[torch.Tensor] = None
        augmentations = self.augmentations(inference_size)
        for scale, flip in augmentations:
            x = prepare(image_bgr, scale, flip)
            logits = resize_bilinear(self.encode_decode(x), (height, width))
            probs = F.softmax(logits, dim=1)
            if flip:
                probs = probs.flip(dims=(3,))
            total = probs if total is None else total + probs
        return total / len(augmentations)

    def scores(self, image_bgr: np.ndarray) -> Tuple[torch.Tensor, bool]:
        """Class scores at the image's size, [1, C, H, W] on the device, and whether they are logits.

        With one augmentation these are its logits (the decision needs no softmax); with several, the
        softmax averaged over them (``probabilities``).
        """
        augmentations = self.augmentations()
        if len(augmentations) > 1:
            return self.probabilities(image_bgr), False
        height, width = check_image(image_bgr).shape[:2]
        ((scale, flip),) = augmentations
        logits = resize_bilinear(self.encode_decode(self.prepare(image_bgr, scale, flip)), (height, width))
        return (logits.flip(dims=(3,)) if flip else logits), True

    def decide(
        self,
        image_bgr: np.ndarray,
        prepare: Optional[Prepare] = None,
        inference_size: Optional[Tuple[int, int]] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """uint8 BGR [H, W, 3] -> train ids uint8 [H, W] and confidence float32 [H, W], on the device.

        With one augmentation the low-resolution logits go to ``decode_logits`` (resize and decision in one
        pass, in fp32); a flipped input's result is flipped back. With TTA, the averaged probabilities.
        ``prepare``: what makes each augmentation's input (``self.prepare`` unless given); ``inference_size``: as
        in ``augmentations``.
        """
        augmentations = self.augmentations(inference_size)
        if len(augmentations) > 1:
            return decode_scores(self.probabilities(image_bgr, prepare, inference_size)[0], False)
        height, width = check_image(image_bgr).shape[:2]
        ((scale, flip),) = augmentations
        logits = self.decision_logits((prepare or self.prepare)(image_bgr, scale, flip), (height, width))
        with torch.inference_mode():
            train_ids, confidence = decode_logits(logits[0].contiguous(), (height, width))  # channels-last head
        if flip:
            train_ids, confidence = train_ids.flip(dims=(1,)), confidence.flip(dims=(1,))
        return train_ids, confidence

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 BGR [H, W, 3] -> train ids and confidence at the image's size."""
        train_ids, confidence = self.decide(image_bgr)
        return Prediction(train_ids=train_ids.cpu().numpy(), confidence=confidence.float().cpu().numpy())
