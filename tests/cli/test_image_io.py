"""Reading image files: hostile headers are refused before decoding, every problem is a ValueError."""

import cv2
import numpy as np
import pytest
from support.hostile_images import jpeg_claiming, png_claiming

from cityscapes_seg_ros.image_io import MAX_PIXELS, read_bgr, write_png


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if OpenCV is asked to decode."""

    def refuse(*args):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(cv2, "imdecode", refuse)


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("huge.png", png_claiming(65535, 65535), "the header claims more than 178956970 pixels"),
        ("big.png", png_claiming(10000, 9000), "the header claims 10000x9000 = 90000000 pixels"),
        ("big.jpg", jpeg_claiming(9000, 8000), "the header claims 9000x8000 = 72000000 pixels"),
    ],
)
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(tmp_path, no_decoding, name, data, words):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match="image too large") as info:
        read_bgr(path)
    assert words in str(info.value) and f"limit of {MAX_PIXELS}" in str(info.value)


def test_the_pixel_limit_is_a_parameter(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), image)
    np.testing.assert_array_equal(read_bgr(tmp_path / "x.png"), image)
    np.testing.assert_array_equal(read_bgr(tmp_path / "x.png", max_pixels=1200), image)
    with pytest.raises(ValueError, match="40x30 = 1200 pixels, more than the limit of 1199"):
        read_bgr(tmp_path / "x.png", max_pixels=1199)


def test_an_opencv_error_while_decoding_becomes_a_value_error(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(65535, 65535))
    # with our limit out of the way, OpenCV's own (2**30 pixels) refuses it by raising cv2.error
    with pytest.raises(ValueError, match="not a readable image: OpenCV .*CV_IO_MAX_IMAGE_PIXELS"):
        read_bgr(path, max_pixels=1 << 40)


def test_an_image_opencv_cannot_encode_is_an_os_error_and_nothing_is_written(tmp_path):
    with pytest.raises(OSError, match="could not encode .*empty.png: OpenCV"):
        write_png(tmp_path / "empty.png", np.zeros((0, 5), np.uint8))
    assert not list(tmp_path.iterdir())
