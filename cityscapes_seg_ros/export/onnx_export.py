"""Export a segmentor to one static-shape ONNX file (plus its YAML sidecar) that TensorRT and ONNX Runtime take.

The graph: ``input`` [N, 3, H, W] RGB float (normalised, or 0..255 with ``normalize_in_graph``) -> backbone and
decode head -> bilinear resize of the logits to H x W (align_corners=False, as the official model) -> either

* ``logits`` [N, 19, H, W] float32: head channels 0..18, the 19 Cityscapes classes in train-id order (the
  released heads have 150 channels; the others are an ADE20K leftover that no Cityscapes class uses), or
* ``train_ids`` [N, H, W] int32: the official decision, the argmax over *all* head channels with a winner >= 19
  written as 255 (ignore), exactly as ``inference.scores_to_train_ids``.

DCNv3: ``gridsample`` traces ``dcnv3_gridsample.dcnv3_core_gridsample`` (standard ops only); ``op`` emits one
``cityscapes_seg::DCNv3`` node per block (``dcnv3_onnx_op.py``), for a runtime with a DCNv3 kernel or plugin.
``fp16`` stores the weights and computes in fp16 except the LayerNorm statistics, the DCNv3 sampling and the
classifier (fp32, as the package's fp16 precision); the input and logits stay float32.

Exporter: ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript). The TorchScript exporter
(``dynamo=False``) cannot export the UperNet pyramid pooling at the usual sizes (adaptive average pooling to
3x3 and 6x6 of a map they do not divide); the dynamo exporter can, and it emits our operator through a
translation table with a registered schema. Its native opset is 18: asking for 17 makes it run a version
converter that fails on this graph, so 18 it is (TensorRT 8.6+ and ONNX Runtime 1.14+ read it).
"""

from __future__ import annotations

import copy
import io
import logging
import os
import secrets
import warnings
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import torch
from torch import nn

from ..labels import IGNORE_TRAIN_ID, NUM_TRAIN_CLASSES
from ..models.layers import resize_bilinear
from ..segmenter import MEAN_RGB, STD_RGB
from .dcnv3_gridsample import gridsample_dcnv3, swapped_dcnv3_core
from .sidecar import sidecar_contents, sidecar_path, write_sidecar

__all__ = [
    "DCNV3_MODES",
    "EXPORT_EXTRA",
    "INPUT_NAME",
    "OPSET",
    "OUTPUT_KINDS",
    "SIZE_MULTIPLE",
    "ExportGraph",
    "ExportSettings",
    "ExportedFiles",
    "export_onnx",
    "require_export_tools",
]

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("argmax", "logits")
DCNV3_MODES = ("gridsample", "op")
INPUT_NAME = "input"
OUTPUT_NAMES = {"argmax": "train_ids", "logits": "logits"}
OPSET = 18
SIZE_MULTIPLE = 32  # the backbone's output stride: the stem (4) and three downsampling stages (2 each)
MAX_EDGE = 8192  # the node's inference_size bound (node/params.py)
MAX_BATCH_PIXELS = MAX_EDGE * MAX_EDGE  # batch x height x width: beyond it the trace alone needs >100 GB
EXPORT_EXTRA = "pip install 'cityscapes_seg_ros[export]'"


@dataclass(frozen=True)
class ExportSettings:
    """What the exported graph looks like; invalid values raise ValueError with a one-line reason."""

    height: int
    width: int
    batch: int = 1
    output: str = "argmax"
    dcnv3: str = "gridsample"
    fp16: bool = False
    normalize_in_graph: bool = False

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
                raise ValueError(
                    f"{name} {value} must be a positive multiple of {SIZE_MULTIPLE} (the backbone's output stride)"
                )
            if value > MAX_EDGE:
                raise ValueError(f"{name} {value} is above the largest supported input edge, {MAX_EDGE}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch {self.batch} must be at least 1")
        if self.batch * self.height * self.width > MAX_BATCH_PIXELS:
            raise ValueError(
                f"batch x height x width = {self.batch} x {self.height} x {self.width} is above "
                f"{MAX_BATCH_PIXELS} pixels ({MAX_EDGE}x{MAX_EDGE}); export a smaller size or batch"
            )
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"unknown output {self.output!r}; expected one of {', '.join(OUTPUT_KINDS)}")
        if self.dcnv3 not in DCNV3_MODES:
            raise ValueError(f"unknown DCNv3 export {self.dcnv3!r}; expected one of {', '.join(DCNV3_MODES)}")

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        return (self.batch, 3, self.height, self.width)

    @property
    def output_name(self) -> str:
        return OUTPUT_NAMES[self.output]

    @property
    def output_shape(self) -> Tuple[int, ...]:
        if self.output == "argmax":
            return (self.batch, self.height, self.width)
        return (self.batch, NUM_TRAIN_CLASSES, self.height, self.width)

    @property
    def output_dtype(self) -> str:
        return "int32" if self.output == "argmax" else "float32"


@dataclass(frozen=True)
class ExportedFiles:
    onnx: Path
    sidecar: Path


class ExportGraph(nn.Module):
    """The exported computation as an eager module: also the PyTorch reference the export is checked against."""

    def __init__(self, segmentor: nn.Module, output: str, normalize_in_graph: bool) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.output = output
        self.normalize_in_graph = normalize_in_graph
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_in_graph:
            x = (x - self.mean) / self.std
        dtype = next(self.segmentor.parameters()).dtype
        logits = self.segmentor.head_logits(x.to(dtype)).float()
        if self.output == "logits":  # the resize is per channel: the unused channels need not be resized
            return resize_bilinear(logits[:, :NUM_TRAIN_CLASSES], x.shape[2:])
        winner = resize_bilinear(logits, x.shape[2:]).argmax(dim=1)
        return torch.where(winner < NUM_TRAIN_CLASSES, winner, IGNORE_TRAIN_ID).to(torch.int32)


def export_graph(segmentor: nn.Module, settings: ExportSettings) -> ExportGraph:
    """The module that ``export_onnx`` exports (an fp16 copy of the segmentor for ``fp16``; never changes it)."""
    segmentor = segmentor.eval()
    if settings.fp16:
        segmentor = copy.deepcopy(segmentor).half()
        segmentor.decode_head.conv_seg.float()  # the classifier runs in fp32 (models.layers.float_island)
    graph = ExportGraph(segmentor, settings.output, settings.normalize_in_graph)
    return graph.to(next(segmentor.parameters()).device).eval()


def require_export_tools() -> None:
    """RuntimeError naming the install command when onnx or onnxscript (the exporter's needs) are missing."""
    missing = []
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise RuntimeError(f"ONNX export needs {', '.join(missing)}: {EXPORT_EXTRA}")


def check_writable(path: Path) -> None:
    """OSError with a one-line reason when ``path`` (and its sidecar) cannot be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"output file {path} must end in .onnx")
    if not folder.is_dir():
        raise OSError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(f"output folder {folder} is not writable")
    for target in (path, sidecar_path(path)):
        if target.is_dir() or (target.exists() and not os.access(target, os.W_OK)):
            raise OSError(f"cannot write {target}")


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _traced_onnx(graph: ExportGraph, settings: ExportSettings) -> Any:
    """The ONNX ModelProto of ``graph`` at the settings' static shape."""
    from .dcnv3_onnx_op import dcnv3_translation_table

    example = torch.rand(settings.input_shape, device=next(graph.parameters()).device)
    with ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        if settings.dcnv3 == "gridsample":
            stack.enter_context(gridsample_dcnv3(graph))
            table = None
        else:
            from ..dcnv3.library import dcnv3_op

            # The operator itself, whatever backend the model was built with or the environment forces.
            stack.enter_context(swapped_dcnv3_core(graph, lambda v, o, m, geometry: dcnv3_op(v, o, m, *geometry)))
            table = dcnv3_translation_table()
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(_quiet_logger("torch.onnx"))  # e.g. "torchvision is not installed", irrelevant here
        stack.enter_context(redirect_stdout(io.StringIO()))  # the exporter prints its progress
        program = torch.onnx.export(
            graph,
            (example,),
            None,
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[settings.output_name],
            custom_translation_table=table,
            verbose=False,
            optimize=True,
        )
    return program.model_proto


def export_onnx(
    segmentor: nn.Module,
    path: os.PathLike | str,
    settings: ExportSettings,
    *,
    model_name: str = "custom",
    checkpoint: str = "",
) -> ExportedFiles:
    """Write ``path`` (.onnx, checked by ``onnx.checker``) and its YAML sidecar; returns both paths.

    Both are written beside their targets and renamed over them at the end: a failure (a full disk, an
    interruption, any exception) leaves no partial file and an existing pair as it was.
    """
    require_export_tools()
    import onnx

    from .dcnv3_onnx_op import register_dcnv3_schema

    path = Path(path)
    check_writable(path)
    register_dcnv3_schema()
    model = _traced_onnx(export_graph(segmentor, settings), settings)
    for node in model.graph.node:
        del node.metadata_props[:]  # the exporter's stack traces: local paths, megabytes for big models
    model.doc_string = f"{model_name} ({settings.output}, DCNv3 {settings.dcnv3}); sidecar {sidecar_path(path).name}"
    onnx.checker.check_model(model, full_check=True)
    contents = sidecar_contents(
        onnx_file=path.name,
        model=model_name,
        checkpoint=checkpoint,
        opset=OPSET,
        dcnv3=settings.dcnv3,
        precision="fp16" if settings.fp16 else "fp32",
        normalize_in_graph=settings.normalize_in_graph,
        input_name=INPUT_NAME,
        input_shape=list(settings.input_shape),
        output_name=settings.output_name,
        output_kind=settings.output,
        output_shape=list(settings.output_shape),
        output_dtype=settings.output_dtype,
    )
    sidecar = sidecar_path(path)
    with _staged(path) as staged_onnx, _staged(sidecar) as staged_sidecar:
        onnx.save(model, str(staged_onnx))
        write_sidecar(staged_sidecar, contents)
        os.replace(staged_onnx, path)
        os.replace(staged_sidecar, sidecar)
    log.info("wrote %s and %s", path, sidecar)
    return ExportedFiles(path, sidecar)


@contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A hidden name beside ``target`` (same file system, so renaming it over ``target`` is atomic; created by the
    writer, with the usual permissions), removed on the way out unless it was renamed."""
    staged = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        yield staged
    finally:
        staged.unlink(missing_ok=True)


def ort_session(path: os.PathLike | str, dcnv3: Optional[str] = None) -> Any:
    """An ONNX Runtime CPU session of an exported file; ``dcnv3="op"`` serves the DCNv3 nodes from Python."""
    if dcnv3 == "op":
        from .dcnv3_onnx_op import dcnv3_op_session

        return dcnv3_op_session(str(path))
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
