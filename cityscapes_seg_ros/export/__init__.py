"""ONNX export (docs/export.md): ``onnx_export`` (the graph and the file), ``dcnv3_gridsample`` (the plugin-free
DCNv3 core), ``dcnv3_onnx_op`` (the custom DCNv3 node and its ONNX Runtime check), ``sidecar`` and ``verify``.
onnx, onnxscript and onnxruntime are imported only inside the functions that need them."""
