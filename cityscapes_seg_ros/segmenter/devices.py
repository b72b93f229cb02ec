"""What a device string means, decided in this one place (CLIs, node parameters, evaluation, bag tools).

``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:<index>``. ``check_device`` only reads
the text (no torch import: the node's parameter checks and the argument parsers use it); ``resolve_device``
turns it into a ``torch.device`` and fails clearly when CUDA is asked for but absent.
"""

from __future__ import annotations

import re
from typing import Any, Optional

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:<index>")
_CUDA_INDEX = re.compile(r"cuda:\d+")


def normalize_device(text: Any) -> str:
    """The canonical spelling (stripped, lower case); ``str(torch.device)`` is accepted as well."""
    return str(text).strip().lower()


def device_problem(text: Any) -> Optional[str]:
    """None for a valid device string, else a sentence saying why not."""
    value = normalize_device(text)
    if value in ("auto", "cpu", "cuda") or _CUDA_INDEX.fullmatch(value):
        return None
    return f"unknown device {text!r}: expected {', '.join(DEVICE_CHOICES[:-1])} or cuda:<index>"


def check_device(text: Any) -> str:
    """The canonical device string, or ``ValueError`` naming the choices."""
    why = device_problem(text)
    if why:
        raise ValueError(why)
    return normalize_device(text)


def wants_cuda(text: Any) -> bool:
    """Whether the device string asks for CUDA (``auto`` does when CUDA is there)."""
    value = check_device(text)
    if value == "auto":
        import torch

        return torch.cuda.is_available()
    return value.startswith("cuda")


def resolve_device(device: Any = "auto"):
    """``"auto"`` -> cuda when available, else cpu; ``"cuda[:i]"`` fails clearly when CUDA is absent."""
    import torch

    value = check_device(device)
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {value!r} requested but CUDA is not available (torch {torch.__version__})")
    return torch.device(value)
