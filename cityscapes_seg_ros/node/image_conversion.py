"""sensor_msgs/Image and CompressedImage <-> numpy, with cv_bridge's semantics, without ROS.

PyPI's ``cv-bridge`` is the ROS 1 release and does not work with rclpy's messages, so the node converts
with numpy and OpenCV here. The functions read only the message fields (``height``, ``width``,
``encoding``, ``step``, ``is_bigendian``, ``data``; ``format`` for compressed images), so this module
imports without ROS; ``to_image_msg`` imports sensor_msgs when it is called.

Every problem with an input raises ``BadImageError`` naming it; the node counts and logs those.
"""

from __future__ import annotations

import array
from typing import Any, Dict, Tuple

import cv2
import numpy as np

# encoding -> (channels, dtype, OpenCV conversion to BGR or None when already BGR / grey)
_ENCODINGS: Dict[str, Tuple[int, np.dtype, Any]] = {
    "bgr8": (3, np.dtype(np.uint8), None),
    "rgb8": (3, np.dtype(np.uint8), cv2.COLOR_RGB2BGR),
    "bgra8": (4, np.dtype(np.uint8), cv2.COLOR_BGRA2BGR),
    "rgba8": (4, np.dtype(np.uint8), cv2.COLOR_RGBA2BGR),
    "mono8": (1, np.dtype(np.uint8), cv2.COLOR_GRAY2BGR),
    "8UC1": (1, np.dtype(np.uint8), cv2.COLOR_GRAY2BGR),
    "8UC3": (3, np.dtype(np.uint8), None),  # cv_bridge treats 8UC3 as BGR
    "mono16": (1, np.dtype(np.uint16), cv2.COLOR_GRAY2BGR),
    "bgr16": (3, np.dtype(np.uint16), None),
    "rgb16": (3, np.dtype(np.uint16), cv2.COLOR_RGB2BGR),
}
SUPPORTED_ENCODINGS: Tuple[str, ...] = tuple(_ENCODINGS)
OUTPUT_ENCODINGS = {"mono8": (1, np.uint8), "rgb8": (3, np.uint8), "bgr8": (3, np.uint8), "32FC1": (1, np.float32)}


class BadImageError(ValueError):
    """An input image that cannot be converted; the message names the problem, ``kind`` classifies it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # unsupported_encoding, empty, too_large, bad_step, size_mismatch, corrupt


def check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise BadImageError("empty", f"empty image ({width}x{height})")
    if height * width > max_pixels:
        raise BadImageError("too_large", f"image of {width}x{height} = {height * width} pixels exceeds max_pixels {max_pixels}")


def image_msg_to_bgr(msg: Any, max_pixels: int = 1 << 26) -> np.ndarray:
    """A sensor_msgs/Image -> uint8 BGR [H, W, 3] (a view of ``msg.data`` when it is bgr8 without padding).

    Rows may be padded (``step`` > width * bytes per pixel). 16-bit images are scaled to 8 bits as
    cv_bridge's ``cvtColor`` does (divided by 256).
    """
    encoding = str(msg.encoding)
    if encoding not in _ENCODINGS:
        raise BadImageError("unsupported_encoding", f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, dtype, conversion = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_size(height, width, max_pixels)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise BadImageError("bad_step", f"step {step} is smaller than width * bytes per pixel = {row_bytes} ({encoding})")
    if step % dtype.itemsize:
        raise BadImageError("bad_step", f"step {step} is not a multiple of the {dtype.itemsize}-byte channel size ({encoding})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise BadImageError("size_mismatch", f"data holds {data.size} bytes, expected step * height = {step} * {height} = {step * height}")
    rows = data.reshape(height, step)[:, :row_bytes]
    pixels = rows.view(dtype.newbyteorder(">" if msg.is_bigendian else "<")) if dtype.itemsize > 1 else rows
    image = pixels.reshape(height, width, channels)
    if dtype.itemsize > 1:
        image = (image.astype(np.uint16) >> 8).astype(np.uint8)
    if conversion is None:
        return image if channels == 3 else image[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(image), conversion)


def compressed_msg_to_bgr(msg: Any, max_pixels: int = 1 << 26) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg or png, as image_transport's compressed plugin writes) -> BGR."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise BadImageError("empty", f"empty compressed image (format {msg.format!r})")
    kind = _compressed_kind(data)
    if kind is None:
        raise BadImageError("unsupported_encoding", f"compressed image is neither JPEG nor PNG (format {msg.format!r}, {data.size} bytes)")
    width, height = _compressed_size(data, kind)
    if width is not None and height is not None:
        check_size(height, width, max_pixels)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise BadImageError("corrupt", f"corrupt or truncated {kind} ({data.size} bytes, format {msg.format!r})")
    check_size(image.shape[0], image.shape[1], max_pixels)
    return image


def _compressed_kind(data: np.ndarray) -> str | None:
    head = data[:8].tobytes()
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


def _compressed_size(data: np.ndarray, kind: str) -> Tuple[int | None, int | None]:
    """Width and height from the header, so a huge image is refused before it is decoded."""
    raw = data.tobytes() if kind == "png" else data[: min(data.size, 1 << 16)].tobytes()
    if kind == "png":
        if len(raw) < 24:
            return None, None
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    pos = 2
    while pos + 9 < len(raw):
        if raw[pos] != 0xFF:
            return None, None
        marker = raw[pos + 1]
        length = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(raw[pos + 7 : pos + 9], "big"), int.from_bytes(raw[pos + 5 : pos + 7], "big")
        pos += 2 + length
    return None, None


def image_fields(image: np.ndarray, encoding: str) -> Dict[str, Any]:
    """The Image fields (height, width, encoding, is_bigendian, step, data) for a numpy image."""
    if encoding not in OUTPUT_ENCODINGS:
        raise ValueError(f"cannot publish encoding {encoding!r}; expected one of {', '.join(OUTPUT_ENCODINGS)}")
    channels, dtype = OUTPUT_ENCODINGS[encoding]
    if image.dtype != dtype or image.ndim != (2 if channels == 1 else 3) or (channels > 1 and image.shape[2] != channels):
        raise ValueError(f"{encoding} needs a {np.dtype(dtype).name} array with {channels} channel(s), got "
                         f"{image.dtype} {image.shape}")  # fmt: skip
    height, width = image.shape[:2]
    data = _array_of_bytes(np.ascontiguousarray(image))
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * channels * image.itemsize,
        "data": data,
    }


def _array_of_bytes(contiguous: np.ndarray) -> array.array:
    """The ``array('B')`` that rclpy messages hold for uint8[] fields, filled with one copy."""
    data = array.array("B")
    data.frombytes(contiguous.data.cast("B"))
    return data


def to_image_msg(image: np.ndarray, encoding: str, header: Any = None) -> Any:
    """A numpy image -> sensor_msgs/Image with ``header`` (stamp and frame_id of the input)."""
    from sensor_msgs.msg import Image

    # check_fields=True keeps the array('B') as given; without it the setter copies it element-wise again.
    msg = Image(check_fields=True)
    if header is not None:
        msg.header = header
    for name, value in image_fields(image, encoding).items():
        setattr(msg, name, value)
    return msg
