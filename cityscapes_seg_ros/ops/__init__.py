"""The model's and the pipeline's tensor ops, each with a compiled op (``kernels/``) and a pure PyTorch / NumPy
fallback.

* ``dcnv3(...)``: the DCNv3 core, backend "auto", "cuda", "cpu" or "torch" (``dcnv3_dispatch.py``);
  ``dcnv3_op`` is the PyTorch operator ``torch.ops.cityscapes_seg.dcnv3`` it calls (``dcnv3_library.py``,
  registered on first use), ``dcnv3_core_torch`` its pure-PyTorch core.
* ``decode_scores``, ``label_histogram``: the per-pixel class decision and its histogram (``score_decode.py``).
* ``png_unfilter.png_unfilter``: the row unfilter of the evaluator's label PNGs (no torch needed).

Every compiled op is loaded by ``compiled.py``; ``CITYSCAPES_SEG_COMPILED_OPS=off`` switches them all off.
Importing this package imports neither torch nor any op: the names below load their module on first use.
"""

from __future__ import annotations

from ..lazy_exports import lazy_exports

_LAZY = {
    "BACKENDS": "dcnv3_dispatch",
    "BACKEND_ENV": "dcnv3_dispatch",
    "dcnv3": "dcnv3_dispatch",
    "resolve_backend": "dcnv3_dispatch",
    "dcnv3_core_torch": "dcnv3_torch",
    "dcnv3_op": "dcnv3_library",
    "decode_scores": "score_decode",
    "label_histogram": "score_decode",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
