"""The model's and the pipeline's tensor ops, each with a compiled op (``kernels/``) and a pure PyTorch / NumPy
fallback.

* ``dcnv3(...)``: the DCNv3 core, backend "auto", "cuda", "cpu" or "torch"; ``dcnv3_op`` is the PyTorch operator
  ``torch.ops.cityscapes_seg.dcnv3`` it calls (registered on first use), ``dcnv3_core_torch`` its pure-PyTorch core.
  They live in the ``cityscapes_seg_ros.dcnv3`` subpackage and are handed on here.
* ``decode_scores``, ``label_histogram``: the per-pixel class decision and its histogram (``score_decode.py``).
* ``png_unfilter.png_unfilter``: the row unfilter of the evaluator's label PNGs (no torch needed).

Every compiled op is loaded by ``compiled.py``; ``CITYSCAPES_SEG_COMPILED_OPS=off`` switches them all off.
Importing this package imports neither torch nor any op: the names below load their module on first use.
"""

from __future__ import annotations

from ..lazy_exports import lazy_exports

_LAZY = {
    "BACKENDS": ".dcnv3.dispatch",
    "BACKEND_ENV": ".dcnv3.dispatch",
    "dcnv3": ".dcnv3.dispatch",
    "resolve_backend": ".dcnv3.dispatch",
    "dcnv3_core_torch": ".dcnv3.reference",
    "dcnv3_op": ".dcnv3.library",
    "decode_scores": "score_decode",
    "label_histogram": "score_decode",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
