"""Pictures of predictions: the official Cityscapes colours and an overlay on the image."""

from __future__ import annotations

import numpy as np

from .labels import TRAIN_ID_PALETTE


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """uint8 train ids [H, W] -> RGB [H, W, 3] in the official palette (ignore is black)."""
    return TRAIN_ID_PALETTE[np.asarray(train_ids, dtype=np.uint8)]


def overlay(image_rgb: np.ndarray, train_ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour mask over an RGB image: (1 - alpha) * image + alpha * colour.

    Ignored pixels (255) keep the image unchanged.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    if image_rgb.shape[:2] != train_ids.shape[:2]:
        raise ValueError(f"image {image_rgb.shape[:2]} and labels {train_ids.shape[:2]} differ in size")
    colors = colorize(train_ids).astype(np.float32)
    blended = image_rgb.astype(np.float32) * (1.0 - alpha) + colors * alpha
    out = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    ignored = np.asarray(train_ids) == 255
    out[ignored] = image_rgb[ignored]
    return out
