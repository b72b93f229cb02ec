"""The geometry record of the DCNv3 core and its argument check, made once per call at the Python entry
(``ops.dcnv3``, ``dcnv3_core_torch``, ``dcnv3_compiled``, ``dcnv3_forward``/``dcnv3_backward``); the cores behind
it, the compiled kernels included, trust it. The official flat argument list (kernel_h ... offset_scale) is
written out once, at the ``torch.library`` boundary (``library.py``); every other entry takes it as ``*geometry``
and turns it into the record at once (``DCNv3Geometry.of``)."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

__all__ = [
    "SUPPORTED_DTYPES",
    "DCNv3Geometry",
    "check_dcnv3_args",
    "check_dcnv3_result_tensor",
    "check_dcnv3_tensor_types",
]

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


class DCNv3Geometry(NamedTuple):
    """The non-tensor arguments of the DCNv3 core, in the official order: what the checked entries hand to the
    cores that trust them."""

    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    dilation_h: int
    dilation_w: int
    group: int
    group_channels: int
    offset_scale: float

    @classmethod
    def of(cls, values: Sequence) -> DCNv3Geometry:
        """The record from the official flat arguments (kernel_h, ..., offset_scale), or the record itself."""
        if len(values) == 1 and isinstance(values[0], DCNv3Geometry):
            return values[0]
        if len(values) != len(cls._fields):
            raise TypeError(
                f"dcnv3: expected the {len(cls._fields)} arguments {', '.join(cls._fields)} after the "
                f"tensors, got {len(values)}"
            )
        *whole, offset_scale = values
        return cls(*(int(value) for value in whole), float(offset_scale))

    @classmethod
    def checked_of(
        cls, values: Sequence, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor
    ) -> DCNv3Geometry:
        """``of(values)``, checked against the tensors (``check_dcnv3_args``)."""
        geometry = cls.of(values)
        geometry.checked(input, offset, mask)
        return geometry

    def checked(self, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> tuple[int, int]:
        """``check_dcnv3_args`` for these tensors; returns the output size (Ho, Wo)."""
        return check_dcnv3_args(input, offset, mask, self)


def check_dcnv3_args(
    input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, geometry: DCNv3Geometry
) -> tuple[int, int]:
    """Validate types, layouts, sizes, dtypes and devices; returns the output size (Ho, Wo). Raises TypeError
    for a non-tensor, ValueError naming the problem otherwise."""
    kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels, _ = geometry
    check_dcnv3_tensor_types(input, offset, mask)
    for name, t in (("input", input), ("offset", offset), ("mask", mask)):
        if t.dim() != 4:
            raise ValueError(f"dcnv3: {name} must be 4-D channels-last [N, H, W, C], got shape {tuple(t.shape)}")
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"dcnv3: {name} has unsupported dtype {t.dtype} (float32, float16, bfloat16, float64)")
    for name, v in (
        ("kernel", (kernel_h, kernel_w)),
        ("stride", (stride_h, stride_w)),
        ("dilation", (dilation_h, dilation_w)),
        ("group/group_channels", (group, group_channels)),
    ):
        if min(v) < 1:
            raise ValueError(f"dcnv3: {name} must be >= 1, got {v}")
    if min(pad_h, pad_w) < 0:
        raise ValueError(f"dcnv3: pad must be >= 0, got {(pad_h, pad_w)}")
    n, h, w, c = input.shape
    if c != group * group_channels:
        raise ValueError(f"dcnv3: input has {c} channels, expected group*group_channels = {group}*{group_channels}")
    ho = (h + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) // stride_h + 1
    wo = (w + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) // stride_w + 1
    points = kernel_h * kernel_w
    if ho < 1 or wo < 1:
        raise ValueError(f"dcnv3: input {h}x{w} is too small for the kernel, padding and dilation")
    expected = {"offset": (n, ho, wo, group * points * 2), "mask": (n, ho, wo, group * points)}
    for name, t in (("offset", offset), ("mask", mask)):
        if tuple(t.shape) != expected[name]:
            raise ValueError(f"dcnv3: {name} shape {tuple(t.shape)} != expected {expected[name]}")
        if t.device != input.device:
            raise ValueError(f"dcnv3: {name} is on {t.device}, input on {input.device}")
    return ho, wo


def check_dcnv3_tensor_types(input: object, offset: object, mask: object) -> None:
    """TypeError naming the first of input, offset, mask that is not a tensor."""
    for name, t in (("input", input), ("offset", offset), ("mask", mask)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"dcnv3: {name} must be a tensor, got {type(t).__name__}")


def check_dcnv3_result_tensor(name: str, tensor: torch.Tensor, input: torch.Tensor, ho: int, wo: int) -> None:
    """A tensor shaped like the output ([N, Ho, Wo, C]: ``out`` to write into, or ``grad_output``) on the input's
    device; ``out`` must also have the input's dtype and be contiguous."""
    expected = (input.shape[0], ho, wo, input.shape[3])
    if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != expected or tensor.device != input.device:
        got = f"{tuple(tensor.shape)} on {tensor.device}" if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"dcnv3: {name} must be {expected} on {input.device}, got {got}")
    if name == "out" and (tensor.dtype != input.dtype or not tensor.is_contiguous()):
        raise ValueError(f"dcnv3: out must be contiguous with the input's dtype {input.dtype}, got {tensor.dtype}")
