"""One frame through the model and the node's post-processing, on the model's device; no ROS here.

On a GPU the preprocessing (resize, flip, normalisation), argmax, colour, overlay and statistics run as
torch ops on the device and only the finished images are copied back. On the CPU the official OpenCV
preprocessing is kept, the class decision is the compiled one-pass op (``ops.decode_scores``) and the
post-processing uses OpenCV / numpy (palette lookup, addWeighted, bincount).

Frames of one size from several cameras go through the network as one batch (``FrameProcessor.process_batch``,
grouped by ``batch_groups``); each frame's result equals what ``process`` makes of it alone. On CUDA the
network forward of the node's fixed input size is replayed as a CUDA graph (``graph_forward.GraphForward``,
parameter ``cuda_graphs``), frames are uploaded and results downloaded through pinned host memory
(``host_transfer``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Collection, ContextManager, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from ..labels import IGNORE_TRAIN_ID, TRAIN_ID_PALETTE
from ..ops.score_decode import decode_logits, tensor_label_histogram
from ..segmenter import MEAN_RGB, STD_RGB, Predictor, precision_scope, rescale_size
from ..visualize import colorize, overlay
from .graph_forward import GraphForward
from .host_transfer import download, upload
from .params import NodeSettings
from .statistics import count_classes

GRAPHS_PER_PREDICTOR = 8  # one per (input size, batch size): the node's fixed size for 1..max_batch_size frames


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


@dataclass
class Frame:
    """One camera frame from its preparation to its post-processing: handed along, never kept by the predictor."""

    image_bgr: np.ndarray  # uint8 [H, W, 3]
    inference_size: Tuple[int, int]  # (long edge, short edge) bound of the keep-ratio resize for this frame
    device_image: Optional[torch.Tensor] = None  # uint8 [1, 3, H, W] BGR on the GPU, uploaded once (GPU only)
    preprocess_s: float = 0.0  # time spent preparing the network inputs (all augmentations)

    def uploaded(self, device: torch.device) -> torch.Tensor:
        """The frame as uint8 [1, 3, H, W] BGR on ``device`` (uploaded at the first call)."""
        if self.device_image is None:
            self.device_image = upload(self.image_bgr, device).permute(2, 0, 1)[None]
        return self.device_image


class DevicePredictor(Predictor):
    """A ``Predictor`` whose preprocessing runs on the device when that is a GPU, timing it into the ``Frame``; on
    CUDA its whole-image forward is replayed from CUDA graphs (``graph_forward``) unless ``graph_forward.enabled``
    is off."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.graph_forward = GraphForward(
            super().network_logits, enabled=self.device.type == "cuda", max_graphs=GRAPHS_PER_PREDICTOR
        )

    def network_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph_forward(x)

    def _precision_scope(self) -> ContextManager:
        # A CUDA graph must not capture autocast's weight-cast cache (freed when the scope ends, replayed after).
        return precision_scope(self.precision, self.device, autocast_cache=not self.graph_forward.enabled)

    def prepare(self, image_bgr: np.ndarray, scale: Tuple[int, int], flip: bool) -> torch.Tensor:
        return self.prepare_frame(Frame(image_bgr, scale), scale, flip)

    def prepare_frame(self, frame: Frame, scale: Tuple[int, int], flip: bool) -> torch.Tensor:
        """The network input of one augmentation of ``frame``; its time is added to ``frame.preprocess_s``."""
        start = time.perf_counter()
        if self.device.type == "cpu":
            x = super().prepare(frame.image_bgr, scale, flip)
        else:
            x = self._prepare_on_device(frame, scale, flip)
            torch.cuda.synchronize(self.device)
        frame.preprocess_s += time.perf_counter() - start
        return x

    def decide_frame(self, frame: Frame) -> Tuple[torch.Tensor, torch.Tensor]:
        """``decide`` for ``frame`` at its inference size, its inputs made by ``prepare_frame``."""

        def prepare(_image: np.ndarray, scale: Tuple[int, int], flip: bool) -> torch.Tensor:
            return self.prepare_frame(frame, scale, flip)

        return self.decide(frame.image_bgr, prepare, frame.inference_size)

    def _prepare_on_device(self, frame: Frame, scale: Tuple[int, int], flip: bool) -> torch.Tensor:
        image = frame.uploaded(self.device)
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


class FrameProcessor:
    """Runs ``DevicePredictor`` on a BGR frame and makes the outputs that ``wanted`` names."""

    def __init__(self, predictor: DevicePredictor) -> None:
        self.predictor = predictor
        self.device = predictor.device
        self._palette = torch.from_numpy(TRAIN_ID_PALETTE.copy()).to(self.device)
        self._applied: Optional[NodeSettings] = None

    def apply_settings(self, settings: NodeSettings) -> None:
        """The predictor's mode, TTA and CUDA graphs as ``settings`` say; nothing to do while they stay the same."""
        if settings == self._applied:
            return
        self._applied = settings
        self.predictor.mode = settings.mode
        self.predictor.tta = settings.tta
        graphs = self.predictor.graph_forward
        # Multi-scale TTA runs six input sizes a frame: eager, rather than six graphs held.
        wanted = settings.cuda_graphs and self.device.type == "cuda" and settings.tta in ("none", "flip")
        if graphs.enabled and not wanted:
            graphs.clear()
            torch.cuda.empty_cache()  # the graphs' memory back to the device
        graphs.enabled = wanted

    def process(self, image_bgr: np.ndarray, settings: NodeSettings, wanted: Collection[str]) -> FrameResult:
        """``wanted``: which of color, overlay, confidence to make (labels and statistics always)."""
        self.apply_settings(settings)
        frame = self._frame(image_bgr, settings)
        start = time.perf_counter()
        train_ids, confidence = self.predictor.decide_frame(frame)  # [H, W] on the device
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        inference_ms = (time.perf_counter() - start - frame.preprocess_s) * 1e3
        return self._postprocess(frame, train_ids, confidence, settings, wanted, inference_ms)

    def process_batch(
        self, images: Sequence[np.ndarray], settings: NodeSettings, wanted: Sequence[Collection[str]]
    ) -> List[FrameResult]:
        """Frames of one size through the network as one batch; ``wanted[i]`` is what ``process`` would make of
        ``images[i]``, and so is each result (its own preprocess and postprocess times; the batch's inference time).

        One frame, or settings that are not ``batchable``, run ``process`` frame by frame. Raises ``ValueError``
        for frames of different sizes (``batch_groups`` keeps them apart).
        """
        if len(images) != len(wanted):
            raise ValueError(f"{len(images)} images but {len(wanted)} output sets")
        if len(images) == 1 or not batchable(settings):
            return [self.process(image, settings, outputs) for image, outputs in zip(images, wanted)]
        if len({image.shape for image in images}) != 1:
            raise ValueError(f"a batch takes frames of one size, got {sorted({image.shape for image in images})}")
        self.apply_settings(settings)
        frames = [self._frame(image, settings) for image in images]
        height, width = images[0].shape[:2]
        start = time.perf_counter()
        inputs = [self.predictor.prepare_frame(frame, frame.inference_size, False) for frame in frames]
        logits = self.predictor.decision_logits(torch.cat(inputs), (height, width))  # [N, C, h, w]
        with torch.inference_mode():
            decisions = [decode_logits(frame_logits.contiguous(), (height, width)) for frame_logits in logits]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        inference_ms = (time.perf_counter() - start - sum(frame.preprocess_s for frame in frames)) * 1e3
        return [
            self._postprocess(frame, train_ids, confidence, settings, outputs, inference_ms)
            for frame, outputs, (train_ids, confidence) in zip(frames, wanted, decisions)
        ]

    @staticmethod
    def _frame(image_bgr: np.ndarray, settings: NodeSettings) -> Frame:
        """The frame's record; with ``resize`` none the network takes the frame at its own size."""
        if settings.resize == "none":
            height, width = image_bgr.shape[:2]
            return Frame(image_bgr, (max(height, width), min(height, width)))
        return Frame(image_bgr, tuple(settings.inference_size))

    def _postprocess(
        self, frame: Frame, train_ids, confidence, settings: NodeSettings, wanted, inference_ms: float
    ) -> FrameResult:
        """One frame's outputs from its decision (numpy on the CPU, torch on the device), with its timings."""
        start = time.perf_counter()
        subset = settings.class_subset
        if self.device.type == "cpu":
            result = self._postprocess_numpy(
                frame.image_bgr, train_ids.numpy(), confidence.numpy(), subset, settings, wanted
            )
        else:
            result = self._postprocess_device(frame, train_ids, confidence, subset, settings, wanted)
        result.timings_ms = {
            "preprocess": frame.preprocess_s * 1e3,
            "inference": inference_ms,
            "postprocess": (time.perf_counter() - start) * 1e3,
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

    def _postprocess_device(self, frame: Frame, train_ids, confidence, subset, settings, wanted) -> FrameResult:
        if subset is not None:
            keep = torch.full((256,), IGNORE_TRAIN_ID, dtype=torch.uint8, device=self.device)
            index = torch.tensor(subset, device=self.device)
            keep[index] = index.to(torch.uint8)
            train_ids = keep[train_ids.long()]
        counts, sums = tensor_label_histogram(train_ids, confidence)
        color = blended = None
        if "color" in wanted or "overlay" in wanted:
            color_t = self._palette[train_ids.long()]  # [H, W, 3] RGB
            color = color_t if "color" in wanted else None
            if "overlay" in wanted:
                image_rgb = frame.uploaded(self.device)[0].flip(0).permute(1, 2, 0).float()
                alpha = settings.overlay_alpha
                mixed = (image_rgb * (1.0 - alpha) + color_t.float() * alpha + 0.5).floor().clamp(0, 255)
                ignored = (train_ids == IGNORE_TRAIN_ID)[:, :, None]
                blended = torch.where(ignored, image_rgb, mixed).to(torch.uint8)
        conf = confidence.float() if "confidence" in wanted else None
        ids, conf, color, blended, counts, sums = download([train_ids, conf, color, blended, counts, sums])
        return FrameResult(ids, conf, color, blended, counts, sums)


def batchable(settings: NodeSettings) -> bool:
    """Whether frames can share a forward under these settings: whole mode, no test-time augmentation."""
    return settings.mode == "whole" and settings.tta == "none"


def batch_groups(shapes: Sequence[Tuple[int, ...]], settings: NodeSettings) -> List[List[int]]:
    """Indices of the frames (by their image shapes) that go through the network together, in order of first
    appearance: frames of one size, at most ``max_batch_size`` a group; every frame alone when not ``batchable``."""
    if not batchable(settings) or settings.max_batch_size == 1:
        return [[index] for index in range(len(shapes))]
    groups: Dict[Tuple[int, ...], List[List[int]]] = {}
    ordered: List[List[int]] = []
    for index, shape in enumerate(shapes):
        same_size = groups.setdefault(tuple(shape), [])
        if not same_size or len(same_size[-1]) == settings.max_batch_size:
            same_size.append([])
            ordered.append(same_size[-1])
        same_size[-1].append(index)
    return ordered
