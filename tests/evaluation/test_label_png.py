"""The fast label-PNG decoder gives what PIL (the official evaluator's reader) gives, and steps aside for any
file it does not fully understand."""

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from support.no_torch import BLOCK_TORCH

from cityscapes_seg_ros.evaluation import label_png
from cityscapes_seg_ros.evaluation.label_png import decode_grey_png
from cityscapes_seg_ros.evaluation.scoring import read_label_image
from cityscapes_seg_ros.ops import compiled
from cityscapes_seg_ros.ops.op_records import OLD_SWITCH_ENV, SWITCH_ENV
from cityscapes_seg_ros.ops.png_unfilter import png_unfilter

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def filter_rows(rows: np.ndarray, filters: list, unit: int) -> bytes:
    """PNG row filtering (the encoder's side of the specification), one filter type per row."""
    raw = rows.astype(np.int32)
    out = []
    for y, kind in enumerate(filters):
        up = raw[y - 1] if y else np.zeros_like(raw[0])
        left = np.concatenate([np.zeros(unit, np.int32), raw[y, :-unit]])
        up_left = np.concatenate([np.zeros(unit, np.int32), up[:-unit]])
        if kind == 0:
            predicted = np.zeros_like(left)
        elif kind == 1:
            predicted = left
        elif kind == 2:
            predicted = up
        elif kind == 3:
            predicted = (left + up) // 2
        elif kind == 4:
            estimate = left + up - up_left
            to_left, to_up, to_up_left = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
            predicted = np.where(
                (to_left <= to_up) & (to_left <= to_up_left), left, np.where(to_up <= to_up_left, up, up_left)
            )
        else:  # an invalid type, to test the decoder's refusal
            predicted = np.zeros_like(left)
        out.append(bytes([kind]) + ((raw[y] - predicted) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def make_png(samples: np.ndarray, filters=None, extra_chunks=(), interlace=0, idat_parts=1) -> bytes:
    height, width = samples.shape
    bit_depth = 16 if samples.dtype == np.uint16 else 8
    rows = samples.astype(">u2").view(np.uint8) if bit_depth == 16 else samples
    filters = filters if filters is not None else [y % 5 for y in range(height)]
    compressed = zlib.compress(filter_rows(rows.reshape(height, -1), filters, bit_depth // 8))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, interlace)
    step = -(-len(compressed) // idat_parts)
    idat = b"".join(chunk(b"IDAT", compressed[i : i + step]) for i in range(0, len(compressed), step))
    return SIGNATURE + chunk(b"IHDR", header) + b"".join(extra_chunks) + idat + chunk(b"IEND", b"")


def pil_reads(data: bytes, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "reference.png"
    path.write_bytes(data)
    with Image.open(path) as image:
        return np.array(image)


def random_labels(rng, shape, dtype) -> np.ndarray:
    """Regions with noise: long runs as in label images, and every byte value somewhere."""
    high = 34 if dtype == np.uint8 else 65536
    coarse = rng.integers(0, high, (shape[0] // 8 + 1, shape[1] // 8 + 1))
    image = np.kron(coarse, np.ones((8, 8), dtype=np.int64))[: shape[0], : shape[1]]
    noise = rng.random(shape) < 0.2
    image[noise] = rng.integers(0, 256 if dtype == np.uint8 else 65536, int(noise.sum()))
    return image.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (64, 3)])
def test_every_filter_type_decodes_as_pil_reads_it(tmp_path, dtype, shape):
    rng = np.random.default_rng(abs(hash((shape, dtype().itemsize))) % 2**32)
    samples = random_labels(rng, shape, dtype)
    data = make_png(samples, idat_parts=3, extra_chunks=[chunk(b"tEXt", b"Comment\x00synthetic")])
    decoded = decode_grey_png(data)
    reference = pil_reads(data, tmp_path)
    assert decoded is not None and decoded.dtype == reference.dtype == dtype
    np.testing.assert_array_equal(decoded, reference)
    np.testing.assert_array_equal(decoded, samples)


def test_files_written_by_pil_and_opencv_decode_fast_and_equal(tmp_path):
    rng = np.random.default_rng(7)
    labels = random_labels(rng, (96, 160), np.uint8)
    instances = random_labels(rng, (96, 160), np.uint16)
    Image.fromarray(labels).save(tmp_path / "pil_labels.png")
    cv2.imwrite(str(tmp_path / "cv2_labels.png"), labels)
    cv2.imwrite(str(tmp_path / "cv2_instances.png"), instances)
    Image.fromarray(instances).save(tmp_path / "pil_instances.png")  # mode I;16: a 16-bit grey PNG
    for name in ("pil_labels", "cv2_labels", "cv2_instances", "pil_instances"):
        data = (tmp_path / f"{name}.png").read_bytes()
        decoded = decode_grey_png(data)
        assert decoded is not None, name
        np.testing.assert_array_equal(decoded, pil_reads(data, tmp_path), err_msg=name)
        np.testing.assert_array_equal(decoded, read_label_image(tmp_path / f"{name}.png"), err_msg=name)


def corrupt_crc(data: bytes) -> bytes:
    position = data.index(b"IDAT") + 8  # a payload byte of the first IDAT chunk
    return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]


def wrong_length_stream(samples: np.ndarray) -> bytes:
    rows = b"".join(bytes([0]) + row.tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", samples.shape[1], samples.shape[0] + 1, 8, 0, 0, 0, 0)  # one row too many
    return SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_files_it_does_not_fully_understand_are_left_to_the_full_decoders():
    samples = random_labels(np.random.default_rng(3), (20, 30), np.uint8)
    plain = make_png(samples)
    cases = {
        "interlaced": make_png(samples, interlace=1),
        "transparency chunk": make_png(samples, extra_chunks=[chunk(b"tRNS", b"\x00\x05")]),
        "significant-bits chunk": make_png(samples, extra_chunks=[chunk(b"sBIT", b"\x04")]),
        "bad CRC": corrupt_crc(plain),
        "truncated": plain[: len(plain) // 2],
        "no IEND": plain[: -len(chunk(b"IEND", b""))],
        "unknown filter type": make_png(samples, filters=[1] * 19 + [5]),
        "stream of the wrong length": wrong_length_stream(samples),
        "not a PNG": b"GIF89a" + plain[6:],
        "empty": b"",
    }
    assert decode_grey_png(plain) is not None
    for name, data in cases.items():
        assert decode_grey_png(data) is None, name


def test_colour_and_palette_pngs_are_left_to_the_full_decoders(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).convert("P").save(tmp_path / "palette.png")
    for name in ("rgb", "palette"):
        assert decode_grey_png((tmp_path / f"{name}.png").read_bytes()) is None, name


def test_without_the_compiled_op_the_reader_still_reads_every_file(tmp_path, monkeypatch):
    samples = random_labels(np.random.default_rng(5), (40, 24), np.uint16)
    path = tmp_path / "instances.png"
    path.write_bytes(make_png(samples))
    monkeypatch.setenv(SWITCH_ENV, "off")
    monkeypatch.setattr(compiled, "_results", {})  # as in a process started with the switch off
    assert label_png.decode_grey_png(path.read_bytes()) is None
    np.testing.assert_array_equal(read_label_image(path), samples)


def test_damaged_files_keep_the_readers_clear_errors(tmp_path):
    path = tmp_path / "truncated.png"
    path.write_bytes(make_png(random_labels(np.random.default_rng(6), (200, 300), np.uint8))[:300])
    with pytest.raises(ValueError, match="truncated.png"):
        read_label_image(path)


def test_the_unfilter_checks_its_arguments():
    rows = bytes([0, 1, 2, 0, 3, 4])  # two rows of two 8-bit samples
    with pytest.raises(ValueError, match="bit depth must be 8 or 16"):
        png_unfilter(rows, 2, 2, 4)
    with pytest.raises(ValueError, match="5 bytes for 2 rows of 2 samples of 8 bits"):
        png_unfilter(rows[:-1], 2, 2, 8)
    if compiled.load("png_unfilter") is None:
        pytest.skip(f"the compiled unfilter is unavailable: {compiled.unavailable_reason('png_unfilter')}")
    with pytest.raises(ValueError, match="row 1 has an unknown filter type"):
        png_unfilter(rows[:3] + bytes([7]) + rows[4:], 2, 2, 8)


def test_the_evaluator_decodes_label_pngs_in_a_process_that_cannot_import_torch(tmp_path):
    if compiled.load("png_unfilter") is None:  # built here if need be, so the subprocess finds it cached
        pytest.skip(f"the compiled unfilter is unavailable: {compiled.unavailable_reason('png_unfilter')}")
    samples = random_labels(np.random.default_rng(8), (30, 41), np.uint16)
    path = tmp_path / "instances.png"
    path.write_bytes(make_png(samples))
    np.save(tmp_path / "expected.npy", samples)
    script = f"""{BLOCK_TORCH}
import numpy as np
from cityscapes_seg_ros.evaluation.label_png import decode_grey_png
from cityscapes_seg_ros.ops import compiled

decoded = decode_grey_png(open({str(path)!r}, "rb").read())
assert decoded is not None, compiled.unavailable_reason("png_unfilter")
assert decoded.dtype == np.uint16 and (decoded == np.load({str(tmp_path / "expected.npy")!r})).all()
assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
print("decoded without torch")
"""
    env = {name: value for name, value in os.environ.items() if name not in (SWITCH_ENV, OLD_SWITCH_ENV)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and "decoded without torch" in result.stdout, result.stderr[-3000:]
