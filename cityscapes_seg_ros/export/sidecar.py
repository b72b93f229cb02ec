"""The YAML sidecar written next to every exported ``.onnx``: what a runtime needs to feed the graph and read its
output, from the package's own tables (labels.py, inference.py), so that nothing is copied by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import yaml

from ..labels import IGNORE_TRAIN_ID, TRAIN_CLASS_NAMES, TRAIN_ID_PALETTE, TRAIN_LABELS
from ..segmenter import MEAN_RGB, STD_RGB

__all__ = ["SIDECAR_FORMAT", "isaac_ros_palette", "read_sidecar", "sidecar_path", "write_sidecar"]

SIDECAR_FORMAT = "cityscapes_seg_ros-onnx/1"


def sidecar_path(onnx_path: Path) -> Path:
    """``model.onnx`` -> ``model.yaml``."""
    return Path(onnx_path).with_suffix(".yaml")


def isaac_ros_palette() -> List[int]:
    """UNetDecoderNode's ``color_palette``: 0xRRGGBB per class id. All 256 ids, so that the ignore id 255 (which
    the decoder colours with ``palette[id % len(palette)]``) is black rather than a class colour."""
    return [int(r) << 16 | int(g) << 8 | int(b) for r, g, b in TRAIN_ID_PALETTE]


def sidecar_contents(
    *,
    onnx_file: str,
    model: str,
    checkpoint: str,
    opset: int,
    dcnv3: str,
    precision: str,
    normalize_in_graph: bool,
    input_name: str,
    input_shape: List[int],
    output_name: str,
    output_kind: str,
    output_shape: List[int],
    output_dtype: str,
) -> Dict[str, Any]:
    if normalize_in_graph:
        values = "RGB 0..255 (uint8 values as float); the graph subtracts mean and divides by std"
    else:
        values = "RGB normalised by the runtime: (value - mean) / std per channel, value in 0..255"
    output = {"name": output_name, "kind": output_kind, "shape": output_shape, "dtype": output_dtype}
    if output_kind == "argmax":
        output["values"] = (
            f"train ids 0..{len(TRAIN_LABELS) - 1}; {IGNORE_TRAIN_ID} = ignore (an unused head channel won)"
        )
    else:
        output["values"] = "logits of the 19 Cityscapes classes in train-id order (head channels 0..18)"
    return {
        "format": SIDECAR_FORMAT,
        "onnx": onnx_file,
        "model": model,
        "checkpoint": checkpoint,
        "opset": opset,
        "dcnv3": dcnv3,
        "precision": precision,
        "input": {
            "name": input_name,
            "shape": input_shape,
            "dtype": "float32",
            "layout": "NCHW",
            "normalize_in_graph": normalize_in_graph,
            "values": values,
            "mean": [float(v) for v in MEAN_RGB],
            "std": [float(v) for v in STD_RGB],
        },
        "output": output,
        "ignore_id": IGNORE_TRAIN_ID,
        "classes": list(TRAIN_CLASS_NAMES),
        "palette": [list(label.color) for label in TRAIN_LABELS],
    }


def write_sidecar(path: Path, contents: Dict[str, Any]) -> Path:
    Path(path).write_text(
        yaml.safe_dump(contents, sort_keys=False, default_flow_style=None, width=200), encoding="utf-8"
    )
    return Path(path)


def read_sidecar(path: Path) -> Dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
