"""Image conversion of the node (cv_bridge semantics) and its statistics, without ROS."""

import math
import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from cityscapes_seg_ros.labels import TRAIN_CLASS_NAMES
from cityscapes_seg_ros.node.image_conversion import (
    BadImageError,
    compressed_msg_to_bgr,
    image_fields,
    image_msg_to_bgr,
)
from cityscapes_seg_ros.node.statistics import class_stats, count_classes

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def image_msg(pixels: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False) -> SimpleNamespace:
    """An object with sensor_msgs/Image's fields, rows padded by ``padding`` bytes."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1).view(np.uint8)
    step = rows.shape[1] + padding
    data = np.zeros((height, step), np.uint8)
    data[:, : rows.shape[1]] = rows
    return SimpleNamespace(height=height, width=width, encoding=encoding, step=step, is_bigendian=int(big_endian),
                           data=data.tobytes())  # fmt: skip


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize(
    "encoding, pixels",
    [
        ("bgr8", BGR),
        ("rgb8", BGR[:, :, ::-1]),
        ("bgra8", np.dstack([BGR, np.full(BGR.shape[:2], 9, np.uint8)])),
        ("rgba8", np.dstack([BGR[:, :, ::-1], np.full(BGR.shape[:2], 9, np.uint8)])),
        ("8UC3", BGR),
    ],
)
def test_colour_encodings_convert_to_bgr(encoding, pixels, padding):
    np.testing.assert_array_equal(image_msg_to_bgr(image_msg(np.ascontiguousarray(pixels), encoding, padding)), BGR)


@pytest.mark.parametrize("padding", [0, 1])
def test_mono8_becomes_grey_bgr(padding):
    grey = BGR[:, :, 0].copy()
    out = image_msg_to_bgr(image_msg(grey, "mono8", padding))
    assert out.shape == (5, 7, 3) and all(np.array_equal(out[:, :, c], grey) for c in range(3))


@pytest.mark.parametrize("big_endian", [False, True])
def test_16_bit_images_are_scaled_to_8_bit(big_endian):
    values = (BGR.astype(np.uint16) << 8) | 0x7F
    pixels = values.astype(">u2" if big_endian else "<u2")
    np.testing.assert_array_equal(image_msg_to_bgr(image_msg(pixels, "bgr16", big_endian=big_endian)), BGR)


@pytest.mark.parametrize(
    "change, kind, words",
    [
        (dict(encoding="yuv422"), "unsupported_encoding", "unsupported encoding 'yuv422'"),
        (dict(step=20), "bad_step", "step 20 is smaller"),
        (dict(data=b"\0" * 50), "size_mismatch", "data holds 50 bytes"),
        (dict(height=0, width=0, step=0, data=b""), "empty", "empty image (0x0)"),
        (dict(height=6), "size_mismatch", "expected step * height"),
    ],
)
def test_bad_raw_images_are_refused_with_the_problem_named(change, kind, words):
    msg = image_msg(BGR, "bgr8")
    for name, value in change.items():
        setattr(msg, name, value)
    with pytest.raises(BadImageError, match=re.escape(words)) as info:
        image_msg_to_bgr(msg)
    assert info.value.kind == kind


def test_too_many_pixels_are_refused_before_any_work():
    with pytest.raises(BadImageError, match="exceeds max_pixels 34") as info:
        image_msg_to_bgr(image_msg(BGR, "bgr8"), max_pixels=34)
    assert info.value.kind == "too_large"


def compressed(image: np.ndarray, ext: str) -> SimpleNamespace:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return SimpleNamespace(format=f"bgr8; {ext[1:]} compressed bgr8", data=data.tobytes())


def test_png_and_jpeg_decode_to_bgr():
    big = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(compressed_msg_to_bgr(compressed(big, ".png")), big)
    flat = np.full((32, 48, 3), (10, 120, 230), np.uint8)
    assert np.abs(compressed_msg_to_bgr(compressed(flat, ".jpg")).astype(int) - flat).max() <= 3


@pytest.mark.parametrize(
    "data, kind, words",
    [
        (b"", "empty", "empty compressed image"),
        (b"GIF89a....", "unsupported_encoding", "neither JPEG nor PNG"),
        ("truncated-jpeg", "corrupt", "corrupt or truncated jpeg"),
        ("huge-png", "too_large", "exceeds max_pixels"),
    ],
)
def test_bad_compressed_images_are_refused(data, kind, words):
    if data == "truncated-jpeg":
        data = compressed(BGR, ".jpg").data[:40]
    elif data == "huge-png":
        data = compressed(np.zeros((200, 300, 3), np.uint8), ".png").data
    with pytest.raises(BadImageError, match=words) as info:
        compressed_msg_to_bgr(SimpleNamespace(format="jpeg", data=data), max_pixels=1000)
    assert info.value.kind == kind


def test_image_fields_round_trip_and_refuse_wrong_arrays():
    fields = image_fields(BGR[:, :, ::-1].copy(), "rgb8")
    assert (fields["height"], fields["width"], fields["step"], len(fields["data"])) == (5, 7, 21, 105)
    np.testing.assert_array_equal(image_msg_to_bgr(SimpleNamespace(**fields)), BGR)
    assert image_fields(np.zeros((2, 3), np.float32), "32FC1")["step"] == 12
    with pytest.raises(ValueError, match="mono8 needs a uint8 array with 1 channel"):
        image_fields(BGR, "mono8")


def test_statistics_count_every_pixel_and_average_confidence():
    train_ids = np.array([[0, 0, 13], [255, 13, 13]], np.uint8)
    confidence = np.array([[0.5, 0.7, 0.9], [0.2, 0.6, 0.3]], np.float32)
    counts, sums = count_classes(train_ids, confidence)
    stats = class_stats(counts, sums)
    assert [s.name for s in stats] == list(TRAIN_CLASS_NAMES)
    road, car = stats[0], stats[13]
    assert (road.pixel_count, car.pixel_count, counts[255]) == (2, 3, 1)
    assert road.fraction == pytest.approx(2 / 6) and car.mean_confidence == pytest.approx(0.6)
    assert math.isnan(stats[1].mean_confidence) and stats[1].pixel_count == 0
    assert [s.train_id for s in class_stats(counts, sums, [13, 0])] == [0, 13]
