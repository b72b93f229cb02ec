"""The DCNv3 core as one custom ONNX node, ``cityscapes_seg::DCNv3``, and a way to run it in ONNX Runtime.

The node carries the attributes of mmdeploy's ``TRTDCNv3`` (the official InternImage TensorRT plugin): kernel_h,
kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels, offset_scale and
im2col_step, with inputs input [N, H, W, G*Cg], offset [N, Ho, Wo, G*K*2], mask [N, Ho, Wo, G*K] (channels-last)
and one output [N, Ho, Wo, G*Cg]. ``DCNV3_SCHEMA`` registers that signature with onnx, so ``onnx.checker`` checks
every node against it and the exporter's translation (``dcnv3_translation_table``) can emit it.

ONNX Runtime has no such kernel; ``dcnv3_op_session`` runs a file through onnxruntime-extensions' Python custom
ops, backed by our operator (``torch.ops.cityscapes_seg.dcnv3``) on the CPU. That is for checking the graph, not
for speed. A TensorRT plugin is designed in docs/export.md.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict

import numpy as np

__all__ = [
    "DCNV3_DOMAIN",
    "DCNV3_INT_ATTRIBUTES",
    "DCNV3_OP_TYPE",
    "IM2COL_STEP",
    "dcnv3_op_session",
    "dcnv3_translation_table",
    "register_dcnv3_schema",
]

DCNV3_DOMAIN = "cityscapes_seg"
DCNV3_OP_TYPE = "DCNv3"
DCNV3_INT_ATTRIBUTES = (
    "kernel_h",
    "kernel_w",
    "stride_h",
    "stride_w",
    "pad_h",
    "pad_w",
    "dilation_h",
    "dilation_w",
    "group",
    "group_channels",
    "im2col_step",
)
IM2COL_STEP = 256  # the official modules' value; our kernels take the whole batch and ignore it
_CONTRIB_DOMAIN = "ai.onnx.contrib"  # the one domain onnxruntime-extensions' Python ops live in


@functools.cache
def register_dcnv3_schema() -> None:
    """Tell onnx (checker, shape inference, onnxscript) the node's signature; once per process."""
    from onnx import defs
    from onnx.defs import OpSchema

    if defs.has(DCNV3_OP_TYPE, DCNV3_DOMAIN):
        return
    attributes = [OpSchema.Attribute(name, OpSchema.AttrType.INT, "") for name in DCNV3_INT_ATTRIBUTES]
    attributes.append(OpSchema.Attribute("offset_scale", OpSchema.AttrType.FLOAT, ""))
    schema = OpSchema(
        DCNV3_OP_TYPE,
        DCNV3_DOMAIN,
        1,
        doc="The DCNv3 core of InternImage, channels-last (mmdeploy TRTDCNv3 attributes).",
        inputs=[OpSchema.FormalParameter(name, "T") for name in ("input", "offset", "mask")],
        outputs=[OpSchema.FormalParameter("output", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "fp32 or fp16")],
        attributes=attributes,
    )
    defs.register_schema(schema)


def dcnv3_translation_table() -> Dict[Callable, Callable]:
    """``custom_translation_table`` for ``torch.onnx.export(dynamo=True)``: our operator -> one DCNv3 node."""
    import onnxscript
    import torch

    from ..dcnv3 import library as dcnv3_library  # noqa: F401  registers torch.ops.cityscapes_seg.dcnv3

    register_dcnv3_schema()
    opset = onnxscript.values.Opset(DCNV3_DOMAIN, 1)

    def dcnv3_node(
        input,
        offset,
        mask,
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        pad_h,
        pad_w,
        dilation_h,
        dilation_w,
        group,
        group_channels,
        offset_scale,
    ):
        return opset.DCNv3(
            input,
            offset,
            mask,
            kernel_h=kernel_h,
            kernel_w=kernel_w,
            stride_h=stride_h,
            stride_w=stride_w,
            pad_h=pad_h,
            pad_w=pad_w,
            dilation_h=dilation_h,
            dilation_w=dilation_w,
            group=group,
            group_channels=group_channels,
            offset_scale=float(offset_scale),
            im2col_step=IM2COL_STEP,
        )

    return {torch.ops.cityscapes_seg.dcnv3.default: dcnv3_node}


def _run_dcnv3_on_cpu(input: np.ndarray, offset: np.ndarray, mask: np.ndarray, **attributes: Any) -> np.ndarray:
    import torch

    from ..dcnv3.library import dcnv3_op

    geometry = [int(attributes[name]) for name in DCNV3_INT_ATTRIBUTES[:-1]] + [float(attributes["offset_scale"])]
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (input, offset, mask)]
    with torch.inference_mode():
        return dcnv3_op(*tensors, *geometry).numpy()


@functools.cache
def _register_python_op() -> str:
    """Register the Python DCNv3 op with onnxruntime-extensions once; returns its library's path."""
    from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op

    attrs = {name: PyCustomOpDef.dt_int64 for name in DCNV3_INT_ATTRIBUTES}
    attrs["offset_scale"] = PyCustomOpDef.dt_float
    onnx_op(op_type=DCNV3_OP_TYPE, inputs=[PyCustomOpDef.dt_float] * 3, outputs=[PyCustomOpDef.dt_float], attrs=attrs)(
        _run_dcnv3_on_cpu
    )
    return get_library_path()


def dcnv3_op_session(model_path: str) -> Any:
    """An ONNX Runtime CPU session of an fp32 ``--dcnv3 op`` export, its DCNv3 nodes run by our CPU operator.

    onnxruntime-extensions serves Python ops in its own domain only, so the session gets an in-memory copy of
    the graph with the nodes moved there; the file is not changed.
    """
    import onnx
    import onnxruntime as ort

    library = _register_python_op()
    model = onnx.load(model_path)
    for node in model.graph.node:
        if node.domain == DCNV3_DOMAIN:
            node.domain = _CONTRIB_DOMAIN
    kept = [entry for entry in model.opset_import if entry.domain != DCNV3_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    model.opset_import.append(onnx.helper.make_opsetid(_CONTRIB_DOMAIN, 1))
    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
