"""One frame through the model and the node's post-processing, on the model's device; no ROS here.

On a GPU the preprocessing (resize, flip, normalisation), argmax, colour, overlay and statistics run as
torch ops on the device and only the finished images are copied back. On the CPU the official OpenCV
preprocessing is kept, the class decision is the compiled one-pass op (``ops.decode_scores``) and the
post-processing uses OpenCV / numpy (palette lookup, addWeighted, bincount).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Collection, Dict, Optional, Tuple

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from ..inference import MEAN_RGB, STD_RGB, Predictor, rescale_size
from ..labels import IGNORE_TRAIN_ID, TRAIN_ID_PALETTE
from ..ops.score_decode import decode_scores
from ..visualize import colorize, overlay
from .params import NodeSettings
from .statistics import count_classes


@dataclass
class FrameResult:
    """The outputs of one frame at the input's size (None where not asked for)."""

    train_ids: np.ndarray  # uint8 [H, W], 255 = ignore (and classes outside the subset)
    confidence: Optional[np.ndarray]  # float32 [H, W], probability of the predicted class
    color: Optional[np.ndarray]  # uint8 RGB [H, W, 3]
    overlay: Optional[np.ndarray]  # uint8 RGB [H, W, 3]
    pixel_counts: np.ndarray  # int64 [256], pixels per label value
    confidence_sums: np.ndarray  # float64 [256], summed confidence per label value
    timings_ms: Dict[str, float] = field(default_factory=dict)  # preprocess, inference, postprocess


class DevicePredictor(Predictor):
    """A ``Predictor`` whose preprocessing runs on the device when that is a GPU, timing it."""

    preprocess_s = 0.0
    _device_image: Optional[torch.Tensor] = None  # uint8 [1, 3, H, W] BGR of the current frame, on the GPU

    def prepare(self, image_bgr: np.ndarray, scale: Tuple[int, int], flip: bool) -> torch.Tensor:
        start = time.perf_counter()
        if self.device.type == "cpu":
            x = super().prepare(image_bgr, scale, flip)
        else:
            x = self._prepare_on_device(image_bgr, scale, flip)
            torch.cuda.synchronize(self.device)
        self.preprocess_s += time.perf_counter() - start
        return x

    def _prepare_on_device(self, image_bgr: np.ndarray, scale: Tuple[int, int], flip: bool) -> torch.Tensor:
        image = self.device_image(image_bgr)
        height, width = image.shape[-2:]
        new_w, new_h = rescale_size(width, height, scale)
        x = image.flip(1).float()  # BGR -> RGB
        if (new_h, new_w) != (height, width):
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        if flip:
            x = x.flip(3)
        mean = torch.tensor(MEAN_RGB, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(STD_RGB, device=self.device).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def device_image(self, image_bgr: np.ndarray) -> torch.Tensor:
        """The frame as uint8 [1, 3, H, W] BGR on the device (uploaded once per frame)."""
        if self._device_image is None:
            self._device_image = (
                torch.from_numpy(np.ascontiguousarray(image_bgr)).to(self.device).permute(2, 0, 1)[None]
            )
        return self._device_image

    def new_frame(self) -> None:
        self.preprocess_s = 0.0
        self._device_image = None


class FrameProcessor:
    """Runs ``DevicePredictor`` on a BGR frame and makes the outputs that ``wanted`` names."""

    def __init__(self, predictor: DevicePredictor) -> None:
        self.predictor = predictor
        self.device = predictor.device
        self._palette = torch.from_numpy(TRAIN_ID_PALETTE.copy()).to(self.device)

    def apply_settings(self, settings: NodeSettings) -> None:
        self.predictor.mode = settings.mode
        self.predictor.tta = settings.tta
        self.predictor.img_scale = tuple(settings.inference_size)

    def process(self, image_bgr: np.ndarray, settings: NodeSettings, wanted: Collection[str]) -> FrameResult:
        """``wanted``: which of color, overlay, confidence to make (labels and statistics always)."""
        predictor = self.predictor
        self.apply_settings(settings)
        height, width = image_bgr.shape[:2]
        if settings.resize == "none":
            predictor.img_scale = (max(height, width), min(height, width))
        predictor.new_frame()
        start = time.perf_counter()
        scores, from_logits = predictor.scores(image_bgr)  # [1, C, H, W] on the device
        train_ids, confidence = decode_scores(scores[0], from_logits)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        inference_s = time.perf_counter() - start - predictor.preprocess_s
        post_start = time.perf_counter()
        subset = settings.class_subset
        if self.device.type == "cpu":
            result = self._postprocess_numpy(image_bgr, train_ids.numpy(), confidence.numpy(), subset, settings, wanted)
        else:
            result = self._postprocess_device(image_bgr, train_ids, confidence, subset, settings, wanted)
        result.timings_ms = {
            "preprocess": predictor.preprocess_s * 1e3,
            "inference": inference_s * 1e3,
            "postprocess": (time.perf_counter() - post_start) * 1e3,
        }
        return result

    @staticmethod
    def _postprocess_numpy(image_bgr, train_ids, confidence, subset, settings, wanted) -> FrameResult:
        if subset is not None:
            keep = np.full(256, IGNORE_TRAIN_ID, np.uint8)
            keep[list(subset)] = subset
            train_ids = np.take(keep, train_ids)
        counts, sums = count_classes(train_ids, confidence)
        color = colorize(train_ids) if "color" in wanted or "overlay" in wanted else None
        blended = None
        if "overlay" in wanted:
            image_rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
            blended = overlay(image_rgb, train_ids, settings.overlay_alpha, color=color)
        if "color" not in wanted:
            color = None
        return FrameResult(train_ids, confidence if "confidence" in wanted else None, color, blended, counts, sums)

    def _postprocess_device(self, image_bgr, train_ids, confidence, subset, settings, wanted) -> FrameResult:
        if subset is not None:
            keep = torch.full((256,), IGNORE_TRAIN_ID, dtype=torch.uint8, device=self.device)
            index = torch.tensor(subset, device=self.device)
            keep[index] = index.to(torch.uint8)
            train_ids = keep[train_ids.long()]
        counts, sums = count_classes(train_ids, confidence)
        color = blended = None
        if "color" in wanted or "overlay" in wanted:
            color_t = self._palette[train_ids.long()]  # [H, W, 3] RGB
            color = color_t.cpu().numpy() if "color" in wanted else None
            if "overlay" in wanted:
                image_rgb = self.predictor.device_image(image_bgr)[0].flip(0).permute(1, 2, 0).float()
                alpha = settings.overlay_alpha
                mixed = (image_rgb * (1.0 - alpha) + color_t.float() * alpha + 0.5).floor().clamp(0, 255)
                ignored = (train_ids == IGNORE_TRAIN_ID)[:, :, None]
                blended = torch.where(ignored, image_rgb, mixed).to(torch.uint8).cpu().numpy()
        conf = confidence.float().cpu().numpy() if "confidence" in wanted else None
        return FrameResult(train_ids.cpu().numpy(), conf, color, blended, counts, sums)
