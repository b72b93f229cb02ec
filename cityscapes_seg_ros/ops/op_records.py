"""What each compiled op is (a record per op), the digest of its sources, and the switch that turns them off.

Shared by the loader (``compiled.py``) and by ``setup.py``, so that the ops built at install time carry the
digest and flags the loader expects. Standard library only, and no import from the package: setup.py reads
this file by path, before the package or torch can be imported.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_CUDA_ARCHS",
    "MODES",
    "OLD_SWITCH_ENV",
    "OPS",
    "RECORDS",
    "SWITCH_ENV",
    "OpRecord",
    "Switch",
    "cuda_arch_list",
    "digest_define",
    "read_switch",
]

SWITCH_ENV = "CITYSCAPES_SEG_COMPILED_OPS"
OLD_SWITCH_ENV = "CITYSCAPES_SEG_DCNV3_BUILD"  # deprecated: it switched every op, not only DCNv3
MODES = ("auto", "off", "cpu", "cuda")
_OFF_WORDS = frozenset({"0", "off", "no", "false", "none", "skip"})
_AUTO_WORDS = frozenset({"", "1", "auto", "on", "yes", "true"})

DIGEST_MACRO = "CSR_SOURCE_DIGEST"  # the build defines it; each op reports it back (see _digest_of in compiled.py)
SOURCE_SUFFIXES = frozenset({".h", ".hpp", ".c", ".cc", ".cpp", ".cu", ".cuh"})
DEFAULT_CUDA_ARCHS = ("8.7", "8.9", "9.0")  # Jetson Orin, Ada, Hopper

_OPENMP = ("-fopenmp",) if sys.platform.startswith("linux") else ()
_CPU_TORCH_FLAGS = ("-O3", "-std=c++20", *_OPENMP)


@dataclass(frozen=True)
class OpRecord:
    """One compiled op. ``kind``: "torch" is a torch C++/CUDA extension module (needs torch to build and to
    load); "library" is a plain shared library with a C ABI, loaded by ctypes, that needs neither torch nor
    Python headers. The op that setup.py builds is ``cityscapes_seg_ros._<name>``."""

    name: str
    folder: str  # the source folder under kernels/; every source file in it enters the digest
    sources: tuple[str, ...]  # the files of that folder that are compiled
    device_type: str  # "cpu" or "cuda": where its data lives
    kind: str  # "torch" or "library"
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...] = ()
    cuda_flags: tuple[str, ...] = ()

    @property
    def module_name(self) -> str:
        return f"cityscapes_seg_ros._{self.name}"

    def digest(self, kernels_root: Path) -> str:
        """SHA-1 of the op's source folder (names and contents of its source files) and of its flags: a build
        with another digest was made from other sources or flags."""
        h = hashlib.sha1()
        for path in sorted((kernels_root / self.folder).iterdir()):
            if path.suffix in SOURCE_SUFFIXES and path.is_file():
                h.update(path.name.encode())
                h.update(path.read_bytes())
        h.update(repr((self.sources, self.cflags, self.ldflags, self.cuda_flags)).encode())
        return h.hexdigest()


# -fno-trapping-math lets GCC turn the float comparisons of the class decision into vector selects;
# -ffp-contract=off: the resize of decode_logits rounds as torch's does only where it says so (fmaf), never where
# the compiler would contract a*b+c on its own.
_DECODE_FLAGS = (*_CPU_TORCH_FLAGS, "-fno-trapping-math", "-ffp-contract=off")
_CUDA_FLAGS = ("-O3", "-std=c++20")
_LIBRARY_FLAGS = ("-O3", "-std=c++17", "-fPIC")
_DCNV3_CUDA_SOURCES = ("dcnv3_cuda.cu", "dcnv3_cuda_bind.cpp")
_DECODE_CUDA_SOURCES = ("score_decode_cuda.cu", "score_decode_cuda_bind.cpp")

RECORDS = (
    OpRecord("dcnv3_cpu", "dcnv3", ("dcnv3_cpu.cpp",), "cpu", "torch", _CPU_TORCH_FLAGS, _OPENMP),
    OpRecord("dcnv3_cuda", "dcnv3", _DCNV3_CUDA_SOURCES, "cuda", "torch", _CUDA_FLAGS, cuda_flags=_CUDA_FLAGS),
    OpRecord("score_decode_cpu", "score_decode", ("score_decode_cpu.cpp",), "cpu", "torch", _DECODE_FLAGS, _OPENMP),
    OpRecord(
        "score_decode_cuda", "score_decode", _DECODE_CUDA_SOURCES, "cuda", "torch", _CUDA_FLAGS, cuda_flags=_CUDA_FLAGS
    ),
    OpRecord("png_unfilter", "png_unfilter", ("png_unfilter.cpp",), "cpu", "library", _LIBRARY_FLAGS),
)
OPS = {record.name: record for record in RECORDS}


def digest_define(digest: str) -> str:
    """The compiler flag that builds ``digest`` into an op. Unquoted (the sources stringify it), so that it
    survives the shell that ninja runs commands in as well as setuptools' argument lists."""
    return f"-D{DIGEST_MACRO}={digest}"


@dataclass(frozen=True)
class Switch:
    """The switch as read: ``mode`` one of MODES, ``setting`` what set it (for messages), ``warnings`` about
    the way it was set (a deprecated name, a value not understood)."""

    mode: str
    setting: str
    warnings: tuple[str, ...] = ()


def _parse(value: str) -> str | None:
    word = value.strip().lower()
    if word in _OFF_WORDS:
        return "off"
    if word in _AUTO_WORDS:
        return "auto"
    return word if word in MODES else None


def read_switch(environ: Mapping[str, str] = os.environ) -> Switch:
    """``CITYSCAPES_SEG_COMPILED_OPS``: ``auto`` (default: every CPU op, the CUDA op where torch sees a GPU),
    ``off`` (no compiled op at all: the pure PyTorch / OpenCV paths), ``cpu`` (no CUDA op), ``cuda`` (build
    the CUDA op even where no GPU is visible). The old ``CITYSCAPES_SEG_DCNV3_BUILD`` is still read, with a
    warning, when the new name is not set."""
    warnings: list[str] = []
    name = SWITCH_ENV
    if SWITCH_ENV in environ:
        if OLD_SWITCH_ENV in environ:
            warnings.append(f"{OLD_SWITCH_ENV} is deprecated and ignored since {SWITCH_ENV} is set")
    elif OLD_SWITCH_ENV in environ:
        name = OLD_SWITCH_ENV
    else:
        return Switch("auto", "default")
    value = environ[name]
    mode = _parse(value)
    if name == OLD_SWITCH_ENV:
        warnings.append(
            f"{OLD_SWITCH_ENV} is deprecated (it switches every compiled op); use {SWITCH_ENV}={mode or 'auto'}"
        )
    if mode is None:
        warnings.append(f"{name}={value!r} not understood (use {', '.join(MODES)}); using auto")
        mode = "auto"
    return Switch(mode, f"{name}={value}", tuple(warnings))


def cuda_arch_list(local_arch: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The CUDA architectures to build for: ``TORCH_CUDA_ARCH_LIST`` when set, else DEFAULT_CUDA_ARCHS and the
    local device's (e.g. "8.6"), the newest with PTX."""
    if environ.get("TORCH_CUDA_ARCH_LIST"):
        return environ["TORCH_CUDA_ARCH_LIST"]
    archs = set(DEFAULT_CUDA_ARCHS) | ({local_arch} if local_arch else set())
    ordered = sorted(archs, key=lambda arch: tuple(int(part) for part in arch.split(".")))
    ordered[-1] += "+PTX"
    return ";".join(ordered)
