"""A fast decoder for the PNGs that scoring reads most: grey 8-bit label ids and 16-bit instance ids.

Decoding the three PNGs of an image was most of the evaluator's time (zlib's inflate and libpng's row
unfiltering, ~30 ms per full-size image). Here the deflate stream is inflated by libdeflate (the ``deflate``
package, several times faster than zlib) and the rows are unfiltered by the compiled op
(``ops.png_unfilter``). Only plain files are taken: a well-formed, non-interlaced grey PNG whose chunks are
IHDR, IDAT, IEND and text or metadata chunks that do not change the pixels, with valid CRCs. For anything
else ``decode_grey_png`` returns None and the caller decodes the file as before (OpenCV / PIL), so that odd,
damaged or truncated files keep the official reader's behaviour and messages.
"""

from __future__ import annotations

import struct
import zlib

import deflate
import numpy as np

from ..ops.png_unfilter import png_unfilter

__all__ = ["decode_grey_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY_COLOR_TYPE = 0
# Ancillary chunks that leave the decoded samples alone (tRNS, sBIT, gAMA and the like are left to OpenCV/PIL).
_HARMLESS_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"pHYs", b"tIME"})
_MAX_DEFLATE_RATIO = 1032  # deflate cannot expand a stream further; a header claiming more is not trusted


def _chunks(data: bytes):
    """(type, payload) of each chunk up to and including IEND; else ends with None (the file ends early or a
    CRC is wrong)."""
    position = len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 8 + length
        if end + 4 > len(data):
            break
        payload = data[position + 8 : end]
        if zlib.crc32(payload, zlib.crc32(kind)) != struct.unpack_from(">I", data, end)[0]:
            yield None
            return
        yield kind, payload
        if kind == b"IEND":
            return
        position = end + 4
    yield None  # no IEND: truncated


def decode_grey_png(data: bytes) -> np.ndarray | None:
    """The samples of a plain grey 8- or 16-bit PNG, as uint8 or uint16 [H, W]; None for any other file."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    header, idat = None, []
    for chunk in _chunks(data):
        if chunk is None:
            return None
        kind, payload = chunk
        if header is None:
            if kind != b"IHDR" or len(payload) != 13:
                return None
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind != b"IEND" and kind not in _HARMLESS_CHUNKS:
            return None
    width, height, bit_depth, colour_type, compression, filter_method, interlace = header
    if colour_type != GREY_COLOR_TYPE or bit_depth not in (8, 16):
        return None
    if (compression, filter_method, interlace) != (0, 0, 0):  # only method 0 exists; interlaced is left out
        return None
    if width == 0 or height == 0 or not idat:
        return None
    compressed = b"".join(idat)
    expected = height * (1 + width * bit_depth // 8)
    if expected > _MAX_DEFLATE_RATIO * len(compressed) + 1024:
        return None
    try:
        filtered = deflate.zlib_decompress(compressed, expected)
    except deflate.DeflateError:
        return None
    if len(filtered) != expected:
        return None
    try:
        return png_unfilter(filtered, height, width, bit_depth)
    except ValueError:  # an unknown filter type: let the full decoder say what is wrong
        return None
