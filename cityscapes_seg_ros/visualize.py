"""Pictures of predictions: the official Cityscapes colours and an overlay on the image."""

from __future__ import annotations

import cv2
import numpy as np

from .labels import TRAIN_ID_PALETTE


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """uint8 train ids [H, W] -> RGB [H, W, 3] in the official palette (ignore is black)."""
    return np.take(TRAIN_ID_PALETTE, np.asarray(train_ids, dtype=np.uint8), axis=0)


def overlay(image_rgb: np.ndarray, train_ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour mask over an RGB image: (1 - alpha) * image + alpha * colour.

    Ignored pixels (255) keep the image unchanged.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    if image_rgb.shape[:2] != train_ids.shape[:2]:
        raise ValueError(f"image {image_rgb.shape[:2]} and labels {train_ids.shape[:2]} differ in size")
    image_rgb = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    out = cv2.addWeighted(image_rgb, 1.0 - alpha, colorize(train_ids), alpha, 0.0)  # rounded, saturated
    ignored = np.asarray(train_ids) == 255
    np.copyto(out, image_rgb, where=ignored[:, :, None])
    return out
