"""``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy, with cv_bridge's semantics, without ROS.

PyPI's ``cv-bridge`` is the ROS 1 release and does not work with rclpy's messages, so images are converted
with numpy and OpenCV here. The decoders read only the message fields (``height``, ``width``, ``encoding``,
``step``, ``is_bigendian``, ``data``; ``format`` for compressed images), so rclpy messages, rosbags messages
and plain namespaces all work; ``to_image_msg`` imports sensor_msgs when it is called.

* ``decode_image``: any supported message -> its pixels as stored (colour in BGR order, mono as ``[H, W]``,
  16-bit kept), e.g. ground-truth label and instance ids;
* ``to_bgr8``: those pixels -> the 8-bit BGR the model reads (16 bit divided by 256 as cv_bridge does);
* ``image_fields`` / ``to_image_msg``: a numpy image -> the Image fields / an rclpy message;
* ``compressed_fields`` / ``to_compressed_msg``: a numpy image -> PNG or JPEG as image_transport's compressed
  plugin writes it (``format`` such as ``rgb8; jpeg compressed bgr8``) / an rclpy CompressedImage.

Every problem with an input raises ``BadImageError`` naming it; its ``kind`` classifies it for the node's
counters.
"""

from __future__ import annotations

import array
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 1 << 26

# encoding -> (channels, dtype, OpenCV conversion to BGR order, or None when already BGR / mono)
INPUT_ENCODINGS: Dict[str, Tuple[int, np.dtype, Optional[int]]] = {
    "bgr8": (3, np.dtype(np.uint8), None),
    "rgb8": (3, np.dtype(np.uint8), cv2.COLOR_RGB2BGR),
    "bgra8": (4, np.dtype(np.uint8), cv2.COLOR_BGRA2BGR),
    "rgba8": (4, np.dtype(np.uint8), cv2.COLOR_RGBA2BGR),
    "8UC3": (3, np.dtype(np.uint8), None),  # cv_bridge treats 8UC3 as BGR
    "mono8": (1, np.dtype(np.uint8), None),
    "8UC1": (1, np.dtype(np.uint8), None),
    "mono16": (1, np.dtype(np.uint16), None),
    "16UC1": (1, np.dtype(np.uint16), None),
    "bgr16": (3, np.dtype(np.uint16), None),
    "rgb16": (3, np.dtype(np.uint16), cv2.COLOR_RGB2BGR),
}
SUPPORTED_ENCODINGS: Tuple[str, ...] = tuple(INPUT_ENCODINGS)
# encoding -> (channels, dtype) of what we publish and record
OUTPUT_ENCODINGS: Dict[str, Tuple[int, np.dtype]] = {
    "mono8": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "32FC1": (1, np.dtype(np.float32)),
}


class BadImageError(ValueError):
    """An image message that cannot be converted; the message names the problem, ``kind`` classifies it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # unsupported_encoding, empty, too_large, bad_step, size_mismatch, corrupt


def check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise BadImageError("empty", f"empty image ({width}x{height})")
    if height * width > max_pixels:
        raise BadImageError(
            "too_large", f"image of {width}x{height} = {height * width} pixels exceeds max_pixels {max_pixels}"
        )


def is_compressed(msg: Any) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def check_header(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """The cheap checks, no pixel touched: encoding (or compressed format), size, step, data length.

    Raises ``BadImageError`` for what ``decode_image`` would refuse before decoding; a compressed image can still
    turn out corrupt when it is decoded.
    """
    if is_compressed(msg):
        data = np.frombuffer(msg.data, dtype=np.uint8)
        if data.size == 0:
            raise BadImageError("empty", f"empty compressed image (format {msg.format!r})")
        kind = _compressed_kind(data)
        if kind is None:
            raise BadImageError(
                "unsupported_encoding",
                f"compressed image is neither JPEG nor PNG (format {msg.format!r}, {data.size} bytes)",
            )
        width, height = _compressed_size(data, kind)
        if width is not None and height is not None:
            check_size(height, width, max_pixels)
        return
    encoding = str(msg.encoding)
    if encoding not in INPUT_ENCODINGS:
        raise BadImageError(
            "unsupported_encoding", f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    channels, dtype, _ = INPUT_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_size(height, width, max_pixels)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise BadImageError(
            "bad_step", f"step {step} is smaller than width * bytes per pixel = {row_bytes} ({encoding})"
        )
    if step % dtype.itemsize:
        raise BadImageError(
            "bad_step", f"step {step} is not a multiple of the {dtype.itemsize}-byte channel size ({encoding})"
        )
    size = len(msg.data)
    if size != step * height:
        raise BadImageError(
            "size_mismatch", f"data holds {size} bytes, expected step * height = {step} * {height} = {step * height}"
        )


def decode_image(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An Image or CompressedImage -> pixels as stored: ``[H, W, 3]`` BGR or ``[H, W]`` mono, 8 or 16 bit.

    For a raw image in BGR or mono order without row padding the result is a view of ``msg.data``.
    """
    check_header(msg, max_pixels)
    if is_compressed(msg):
        return _decode_compressed(msg, max_pixels)
    channels, dtype, conversion = INPUT_ENCODINGS[str(msg.encoding)]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)[:, :row_bytes]
    if dtype.itemsize > 1:
        stored = dtype.newbyteorder(">" if msg.is_bigendian else "<")
        rows = np.ascontiguousarray(rows).view(stored).astype(dtype, copy=False)
    image = rows.reshape(height, width, channels)
    if conversion is not None:
        return cv2.cvtColor(np.ascontiguousarray(image), conversion)
    return image[:, :, 0] if channels == 1 else image


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Decoded pixels -> uint8 BGR ``[H, W, 3]`` (the model's input); 16 bit is divided by 256 as cv_bridge does."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise BadImageError("unsupported_encoding", f"cannot show {image.dtype} pixels as an 8-bit colour image")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def image_msg_to_bgr(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An Image or CompressedImage -> uint8 BGR ``[H, W, 3]`` (a view of ``msg.data`` for unpadded bgr8)."""
    return to_bgr8(decode_image(msg, max_pixels))


def _decode_compressed(msg: Any, max_pixels: int) -> np.ndarray:
    """JPEG or PNG, as image_transport's compressed plugin writes them (``check_header`` has checked the size)."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    kind = _compressed_kind(data)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise BadImageError("corrupt", f"corrupt or truncated {kind} ({data.size} bytes, format {msg.format!r})")
    check_size(image.shape[0], image.shape[1], max_pixels)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _compressed_kind(data: np.ndarray) -> Optional[str]:
    head = data[:8].tobytes()
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


def _compressed_size(data: np.ndarray, kind: str) -> Tuple[Optional[int], Optional[int]]:
    """Width and height from the header, so that a huge image is refused before it is decoded."""
    if kind == "png":
        if data.size < 24:
            return None, None
        raw = data[:24].tobytes()
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    raw = data.tobytes()
    pos = 2
    while pos + 9 < len(raw):  # segment by segment to the start of frame, wherever it is (APP data can be long)
        if raw[pos] != 0xFF:
            return None, None
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(raw[pos + 7 : pos + 9], "big"), int.from_bytes(raw[pos + 5 : pos + 7], "big")
        if marker == 0xDA or length < 2:  # start of scan before any frame header, or a broken length
            return None, None
        pos += 2 + length
    return None, None


def image_fields(image: np.ndarray, encoding: str) -> Dict[str, Any]:
    """The Image fields (height, width, encoding, is_bigendian, step, data) of a numpy image.

    ``data`` is the pixels as a flat uint8 array (little-endian, no row padding).
    """
    if encoding not in OUTPUT_ENCODINGS:
        raise ValueError(f"cannot publish encoding {encoding!r}; expected one of {', '.join(OUTPUT_ENCODINGS)}")
    channels, dtype = OUTPUT_ENCODINGS[encoding]
    if (
        image.dtype != dtype
        or image.ndim != (2 if channels == 1 else 3)
        or (channels > 1 and image.shape[2] != channels)
    ):
        raise ValueError(
            f"{encoding} needs a {dtype.name} array with {channels} channel(s), got {image.dtype} {image.shape}"
        )
    height, width = image.shape[:2]
    pixels = np.ascontiguousarray(image, dtype=dtype.newbyteorder("<"))
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * channels * dtype.itemsize,
        "data": pixels.reshape(-1).view(np.uint8),
    }


def to_image_msg(image: np.ndarray, encoding: str, header: Any = None) -> Any:
    """A numpy image -> sensor_msgs/Image (rclpy) with ``header`` (stamp and frame_id of the input)."""
    from sensor_msgs.msg import Image

    fields = image_fields(image, encoding)
    data = _byte_array(fields.pop("data"))
    msg = _message(Image, header)
    for name, value in fields.items():
        setattr(msg, name, value)
    msg.data = data
    return msg


def _byte_array(data: np.ndarray) -> array.array:
    """rclpy holds uint8[] as array('B'): filled with one copy (a message made with check_fields=True keeps it as
    given; without it the setter copies it element-wise again)."""
    held = array.array("B")
    held.frombytes(data.data)
    return held


def _message(message_class: Any, header: Any) -> Any:
    try:
        msg = message_class(check_fields=True)
    except (TypeError, AssertionError):  # Humble's generated messages take no check_fields
        msg = message_class()
    if header is not None:
        msg.header = header
    return msg


# Encodings that image_transport's compressed plugin takes (8 bit; 32FC1 confidence has no compressed form).
COMPRESSIBLE_ENCODINGS = ("mono8", "rgb8", "bgr8")


def compressed_fields(image: np.ndarray, encoding: str, jpeg_quality: Optional[int] = None) -> Dict[str, Any]:
    """The CompressedImage fields (format, data) of a numpy image in ``encoding``: PNG, lossless (label ids
    survive), when ``jpeg_quality`` is None, else JPEG of that quality (1-100). Colour is stored in BGR order,
    as image_transport's compressed plugin stores it and names it in ``format``."""
    if encoding not in COMPRESSIBLE_ENCODINGS:
        raise ValueError(f"cannot compress encoding {encoding!r}; expected one of {', '.join(COMPRESSIBLE_ENCODINGS)}")
    image_fields(image, encoding)  # the same checks of dtype and channels
    stored = "mono8" if encoding == "mono8" else "bgr8"
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if encoding == "rgb8" else image
    if jpeg_quality is None:
        ok, data = cv2.imencode(".png", pixels)
        kind = "png"
    else:
        ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        kind = "jpeg"
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} {encoding} image as {kind}")
    return {"format": f"{encoding}; {kind} compressed {stored}", "data": data.reshape(-1)}


def to_compressed_msg(image: np.ndarray, encoding: str, header: Any = None, jpeg_quality: Optional[int] = None) -> Any:
    """A numpy image -> sensor_msgs/CompressedImage (rclpy) with ``header``; PNG, or JPEG with ``jpeg_quality``."""
    from sensor_msgs.msg import CompressedImage

    fields = compressed_fields(image, encoding, jpeg_quality)
    msg = _message(CompressedImage, header)
    msg.format = fields["format"]
    msg.data = _byte_array(fields["data"])
    return msg
