"""The last step of decoding a grey label PNG for the evaluator: reversing the row filters of its inflated IDAT
stream (``png_unfilter``).

The work is done by the compiled library ``kernels/png_unfilter`` (a C ABI called through ctypes, loaded by
``compiled.py``), which needs no torch: the evaluator imports this module without importing torch. Where the
library is unavailable ``png_unfilter`` returns None and the caller decodes the file another way.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from . import compiled

__all__ = ["OP_NAME", "png_unfilter"]

OP_NAME = "png_unfilter"


def _unfilter_function() -> Any | None:
    library = compiled.load(OP_NAME)
    if library is None:
        return None
    function = library.csr_png_unfilter_grey  # ctypes keeps this object: the signature is set once
    if function.restype is not ctypes.c_int64:
        function.argtypes = [ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p]
        function.restype = ctypes.c_int64  # last: once it is set, so are the argument types
    return function


def png_unfilter(filtered: bytes, height: int, width: int, bit_depth: int) -> np.ndarray | None:
    """The samples [H, W] (uint8 for 8 bits, uint16 for 16) of a grey, non-interlaced PNG from its inflated
    IDAT stream; None where the compiled library is unavailable. ValueError for a bit depth other than 8 or
    16, a stream of the wrong length or an unknown filter type."""
    if bit_depth not in (8, 16):
        raise ValueError(f"png_unfilter: bit depth must be 8 or 16, got {bit_depth}")
    if height < 0 or width < 0:
        raise ValueError(f"png_unfilter: negative size {height}x{width}")
    expected = height * (1 + width * bit_depth // 8)
    if len(filtered) != expected:
        raise ValueError(
            f"png_unfilter: {len(filtered)} bytes for {height} rows of {width} samples of {bit_depth} bits"
        )
    function = _unfilter_function()
    if function is None:
        return None
    samples = np.empty((height, width), np.uint8 if bit_depth == 8 else np.uint16)
    # ctypes passes a bytes object's own buffer (no copy) and releases the GIL during the call.
    bad_row = function(bytes(filtered), height, width, bit_depth, samples.ctypes.data)
    if bad_row == -2:
        raise MemoryError(f"png_unfilter: no memory for two rows of {width} samples")
    if bad_row >= 0:
        raise ValueError(f"png_unfilter: row {bad_row} has an unknown filter type")
    return samples
