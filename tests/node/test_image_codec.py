"""The one Image/CompressedImage <-> numpy codec (cv_bridge semantics) and the topic names, without ROS."""

import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from cityscapes_seg_ros.ros_contract import topics
from cityscapes_seg_ros.ros_contract.image_codec import BadImageError, decode_image, image_fields, image_msg_to_bgr

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def image_msg(pixels: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False) -> SimpleNamespace:
    """An object with sensor_msgs/Image's fields, rows padded by ``padding`` bytes."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1).view(np.uint8)
    step = rows.shape[1] + padding
    data = np.zeros((height, step), np.uint8)
    data[:, : rows.shape[1]] = rows
    return SimpleNamespace(
        height=height, width=width, encoding=encoding, step=step, is_bigendian=int(big_endian), data=data.tobytes()
    )


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
    np.testing.assert_array_equal(image_msg_to_bgr(compressed(big, ".png")), big)
    flat = np.full((32, 48, 3), (10, 120, 230), np.uint8)
    assert np.abs(image_msg_to_bgr(compressed(flat, ".jpg")).astype(int) - flat).max() <= 3


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
        image_msg_to_bgr(SimpleNamespace(format="jpeg", data=data), max_pixels=1000)
    assert info.value.kind == kind


def test_image_fields_round_trip_and_refuse_wrong_arrays():
    fields = image_fields(BGR[:, :, ::-1].copy(), "rgb8")
    assert (fields["height"], fields["width"], fields["step"], len(fields["data"])) == (5, 7, 21, 105)
    np.testing.assert_array_equal(image_msg_to_bgr(SimpleNamespace(**fields)), BGR)
    assert image_fields(np.zeros((2, 3), np.float32), "32FC1")["step"] == 12
    with pytest.raises(ValueError, match="mono8 needs a uint8 array with 1 channel"):
        image_fields(BGR, "mono8")


@pytest.mark.parametrize("encoding, dtype", [("mono16", np.uint16), ("16UC1", np.uint16), ("mono8", np.uint8)])
def test_mono_images_keep_their_values_for_ground_truth(encoding, dtype):
    ids = RNG.integers(0, np.iinfo(dtype).max, (4, 6)).astype(dtype)
    fields = image_fields(ids, "mono16" if dtype == np.uint16 else "mono8")
    fields["encoding"] = encoding
    decoded = decode_image(SimpleNamespace(**fields))
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, ids)
    np.testing.assert_array_equal(
        image_msg_to_bgr(SimpleNamespace(**fields))[:, :, 1], ids >> 8 if dtype == np.uint16 else ids
    )


def test_16bit_png_label_images_decode_unchanged():
    ids = RNG.integers(0, 40000, (9, 11)).astype(np.uint16)
    decoded = decode_image(compressed(ids, ".png"))
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, ids)


@pytest.mark.parametrize(
    "image_topic, labels, info",
    [
        ("/cam/front/image_raw", "/cam/front/segmentation/labels", "/cam/front/camera_info"),
        ("/image_raw", "/segmentation/labels", "/camera_info"),
        ("image_raw", "segmentation/labels", "camera_info"),
    ],
)
def test_output_topics_live_under_the_cameras_segmentation_namespace(image_topic, labels, info):
    assert topics.output_topic(image_topic, "labels") == labels
    assert topics.camera_info_topic(image_topic) == info
    assert topics.input_topic(image_topic, "compressed") == image_topic + "/compressed"
    assert topics.camera_of_input(image_topic + "/compressed", topics.COMPRESSED_IMAGE_TYPE) == (
        image_topic,
        "compressed",
    )
    assert topics.camera_of_input(image_topic, topics.IMAGE_TYPE) == (image_topic, "raw")
    with pytest.raises(ValueError, match="unknown output 'mask'"):
        topics.output_topic(image_topic, "mask")


def test_a_jpeg_whose_frame_header_follows_long_app_segments_is_refused_before_decoding(monkeypatch):
    ok, encoded = cv2.imencode(".jpg", np.zeros((300, 400, 3), np.uint8))
    assert ok
    app = b"\xff\xe1" + (65533).to_bytes(2, "big") + bytes(65531)  # two 64 KB APP1 segments after SOI
    data = encoded.tobytes()[:2] + app + app + encoded.tobytes()[2:]
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1))
    with pytest.raises(BadImageError, match="exceeds max_pixels 1000") as info:
        decode_image(SimpleNamespace(format="jpeg", data=data), max_pixels=1000)
    assert info.value.kind == "too_large" and not decoded


def test_compressed_fields_png_is_lossless_and_jpeg_follows_the_quality():
    from cityscapes_seg_ros.ros_contract.image_codec import compressed_fields

    rng = np.random.default_rng(11)
    ids = rng.integers(0, 19, (37, 53), dtype=np.uint8)
    ids[rng.random(ids.shape) < 0.1] = 255
    fields = compressed_fields(ids, "mono8")
    assert fields["format"] == "mono8; png compressed mono8"
    assert np.array_equal(cv2.imdecode(fields["data"], cv2.IMREAD_UNCHANGED), ids)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    png = compressed_fields(rgb, "rgb8")
    assert png["format"] == "rgb8; png compressed bgr8"
    assert np.array_equal(cv2.imdecode(png["data"], cv2.IMREAD_COLOR)[..., ::-1], rgb)  # stored BGR, as image_transport
    low, high = (compressed_fields(rgb, "rgb8", quality) for quality in (20, 95))
    assert low["format"] == "rgb8; jpeg compressed bgr8" and low["data"].size < high["data"].size
    errors = [
        np.abs(cv2.imdecode(f["data"], cv2.IMREAD_COLOR)[..., ::-1].astype(int) - rgb).mean() for f in (low, high)
    ]
    assert errors[1] < errors[0]
    with pytest.raises(ValueError, match="cannot compress encoding '32FC1'"):
        compressed_fields(np.zeros((4, 4), np.float32), "32FC1")
