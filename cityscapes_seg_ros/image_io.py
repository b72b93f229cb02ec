"""Reading images and writing results atomically (a killed run never leaves a half-written file behind)."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
# Larger images are refused before decoding (as the node's max_pixels does for messages): a header can claim
# any size, and a prediction holds its 150-channel float logits at the image's full size.
MAX_PIXELS = 1 << 26  # 8192 x 8192


def read_bgr(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as 3-channel uint8 BGR (grey and alpha images converted, as mmcv does).

    Every problem raises ``ValueError`` saying what is wrong (the callers name the file): unreadable data, or
    more than ``max_pixels`` pixels, found from the header before anything is decoded where the header can be
    read.
    """
    data = np.fromfile(str(path), dtype=np.uint8)
    if not data.size:
        raise ValueError("not a readable image (empty file)")
    check_header(data, max_pixels)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV's own limits, e.g. more than 2**30 pixels
        raise ValueError(f"not a readable image: {opencv_reason(exc)}") from None
    if image is None or not image.size:
        raise ValueError("not a readable image (corrupt, truncated or unsupported format)")
    check_pixels(image.shape[1], image.shape[0], max_pixels, "decoded")
    return image


def check_header(data: np.ndarray, max_pixels: int) -> None:
    """Refuse an image whose header (read by Pillow, nothing decoded) claims more than ``max_pixels`` pixels.

    A header Pillow cannot read is left to OpenCV to judge.
    """
    with warnings.catch_warnings():  # Pillow warns of sizes that are refused here anyway
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data.tobytes())) as image:
                width, height = image.size
        except Image.DecompressionBombError:  # over Pillow's own limit: its size is not told
            bomb_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            if max_pixels >= bomb_limit:
                return
            raise ValueError(
                f"image too large: the header claims more than {bomb_limit} pixels, more than the limit of {max_pixels}"
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return
    check_pixels(width, height, max_pixels, "the header claims")


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"empty image: {what} {width}x{height}")
    if width * height > max_pixels:
        raise ValueError(
            f"image too large: {what} {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}"
        )


def opencv_reason(exc: cv2.error) -> str:
    """An OpenCV error in one line: the failed check and the function, without OpenCV's source path."""
    err, func = getattr(exc, "err", ""), getattr(exc, "func", "")
    if err:
        return f"OpenCV {func}: {err}" if func else f"OpenCV: {err}"
    return " ".join(str(exc).split())


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the pid: processes never share a temp file
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_png(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` as PNG and write it atomically."""
    try:
        ok, encoded = cv2.imencode(".png", image)
    except cv2.error as exc:
        raise OSError(f"could not encode {path}: {opencv_reason(exc)}") from None
    if not ok:
        raise OSError(f"could not encode {path}")
    write_atomic(path, encoded.tobytes())
