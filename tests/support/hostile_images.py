"""Image files that once stopped ``cityscapes-seg predict``: extreme aspect ratios, one pixel, lying headers."""

import struct
import zlib
from pathlib import Path
from typing import Dict, Tuple

import cv2
import numpy as np

# name -> (height, width) of the images that must be segmented at their own size
EXTREME_SHAPES: Dict[str, Tuple[int, int]] = {"wide.png": (1, 20000), "tall.png": (20000, 1), "dot.png": (1, 1)}


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming(width: int, height: int) -> bytes:
    """A small, well-formed PNG (valid CRCs) whose IHDR claims ``width`` x ``height`` RGB pixels; its pixel
    data holds only four rows."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 4)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 8x8 JPEG whose start-of-frame header is rewritten to claim ``width`` x ``height``."""
    ok, encoded = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def write_hostile_images(folder: Path) -> None:
    """The extreme shapes (random pixels) and ``huge.png``, whose header claims 65535 x 65535."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for name, shape in EXTREME_SHAPES.items():
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    (folder / "huge.png").write_bytes(png_claiming(65535, 65535))
