"""Run an exported file in ONNX Runtime (CPU) and compare it with the PyTorch model on fresh random inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from .onnx_export import INPUT_NAME, ExportSettings, export_graph, ort_session

__all__ = ["ExportCheck", "check_verifiable", "compare_with_pytorch", "random_input"]


@dataclass(frozen=True)
class ExportCheck:
    """``relative_error``: ||onnx - torch|| / ||torch|| of the logits (None for argmax outputs);
    ``agreement``: fraction of pixels with the same class (argmax of the logits, or the train ids)."""

    relative_error: Optional[float]
    agreement: float

    def describe(self) -> str:
        error = "" if self.relative_error is None else f"logits relative error {self.relative_error:.2e}, "
        return f"{error}class agreement {100 * self.agreement:.3f}%"


def random_input(settings: ExportSettings, seed: int = 0) -> np.ndarray:
    """A random image batch in the graph's input convention: 0..255 RGB, or already normalised."""
    generator = np.random.default_rng(seed)
    if settings.normalize_in_graph:
        return generator.uniform(0.0, 255.0, size=settings.input_shape).astype(np.float32)
    return generator.standard_normal(size=settings.input_shape).astype(np.float32)


def check_verifiable(settings: ExportSettings) -> None:
    """RuntimeError when ``compare_with_pytorch`` cannot run an export of these settings (checked before exporting)."""
    if settings.dcnv3 == "op" and settings.fp16:
        raise RuntimeError("an fp16 --dcnv3 op export cannot be run here: the Python DCNv3 op serves float32 only")


def compare_with_pytorch(segmentor: nn.Module, path: Path, settings: ExportSettings, seed: int = 0) -> ExportCheck:
    """The exported file (ONNX Runtime, CPU) against the eager ``ExportGraph`` of ``segmentor`` with its own DCNv3
    core, on one random batch; fp16 exports are compared with the fp16 PyTorch model."""
    check_verifiable(settings)
    x = random_input(settings, seed)
    onnx_out = ort_session(path, settings.dcnv3).run(None, {INPUT_NAME: x})[0]
    graph = export_graph(segmentor, settings)
    with torch.inference_mode():
        torch_out = graph(torch.from_numpy(x).to(next(graph.parameters()).device)).cpu().numpy()
    if onnx_out.shape != torch_out.shape:
        raise RuntimeError(f"exported output has shape {onnx_out.shape}, the model's {torch_out.shape}")
    if settings.output == "argmax":
        return ExportCheck(None, float(np.mean(onnx_out == torch_out)))
    difference = onnx_out.astype(np.float64) - torch_out
    error = float(np.linalg.norm(difference) / np.linalg.norm(torch_out.astype(np.float64)))
    return ExportCheck(error, float(np.mean(onnx_out.argmax(axis=1) == torch_out.argmax(axis=1))))
