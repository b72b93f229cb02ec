"""The one loader of the compiled ops (``kernels/<folder>/``, described in ``op_records.py``).

``load(name)`` gives the op, or None when it is unavailable; ``unavailable_reason(name)`` says why. For each op,
on first use, once per process:

1. ``CITYSCAPES_SEG_COMPILED_OPS`` (``auto``, ``off``, ``cpu``, ``cuda``; see ``op_records.read_switch``) may
   rule it out: ``off`` leaves every caller on its pure PyTorch / OpenCV path.
2. The op built by ``pip install`` (setup.py: ``cityscapes_seg_ros._<name>``) is used when the digest built
   into it matches the sources and flags now (so an edited kernel is never run stale).
3. Otherwise it is built just in time and cached by digest under ``$TORCH_EXTENSIONS_DIR/cityscapes_seg_ros``
   or ``~/.cache/cityscapes_seg_ros/compiled_ops`` (a torch op with ``torch.utils.cpp_extension``, about a
   minute; a library op with the C++ compiler, ``$CXX`` or ``c++``, about a second). Later processes load
   the cached build.

A failed build never raises: it is logged once, as a warning with the reason, and the op is None. Loading is
thread-safe (one build per op, concurrent callers wait for it). This module does not import torch; only a
torch op's loading does, so library ops (the PNG row unfilter) serve torch-free processes.

``CITYSCAPES_SEG_KERNELS_DIR`` names the ``kernels`` folder when it is not found beside the package (a source
checkout), under the ament prefixes' ``share/cityscapes_seg_ros`` (a colcon install: ``install/cityscapes_seg_ros``)
or under ``<sys.prefix>/share/cityscapes_seg_ros`` (a pip install).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

from .op_records import OPS, OpRecord, Switch, cuda_arch_list, digest_define, read_switch

__all__ = ["KERNELS_ENV", "build_root", "kernels_root", "load", "unavailable_reason"]

log = logging.getLogger(__name__)

KERNELS_ENV = "CITYSCAPES_SEG_KERNELS_DIR"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # where setup.py puts the ops it builds

_results: dict[str, tuple[Any, str | None]] = {}  # name -> (op or None, why it is None)
_op_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()
_switch_warnings_logged: set[str] = set()


def load(name: str) -> Any | None:
    """The compiled op ``name`` (a key of ``op_records.OPS``): a module for a torch op, a ``ctypes.CDLL`` for a
    library op; None when it is switched off, not wanted on this machine, or failed to build."""
    if name not in OPS:
        raise ValueError(f"unknown compiled op {name!r}; known: {', '.join(OPS)}")
    result = _results.get(name)
    if result is None:
        with _guard:
            lock = _op_locks.setdefault(name, threading.Lock())
        with lock:
            result = _results.get(name)
            if result is None:
                result = _results[name] = _load(OPS[name])
    return result[0]


def unavailable_reason(name: str) -> str | None:
    """Why ``load(name)`` gave None; None when it gave the op or has not been called."""
    result = _results.get(name)
    return None if result is None else result[1]


def ament_share_dirs() -> list[Path]:
    """``share/cityscapes_seg_ros`` under the ament prefixes (a colcon install, a ROS distro), where CMakeLists.txt
    installs ``kernels/``: the ament index's answer first, then each ``AMENT_PREFIX_PATH`` entry."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    folders = [Path(prefix) / "share" / "cityscapes_seg_ros" for prefix in prefixes]
    if not prefixes:  # the ament index reads the same variable (and raises without it)
        return folders
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return folders
    try:
        return [Path(get_package_share_directory("cityscapes_seg_ros")), *folders]
    except PackageNotFoundError:
        return folders


def kernels_root() -> Path | None:
    """The ``kernels`` folder with the ops' sources, or None when it cannot be found."""
    candidates = [Path(os.environ[KERNELS_ENV])] if os.environ.get(KERNELS_ENV) else []
    candidates += [PACKAGE_DIR.parent / "kernels", *(share / "kernels" for share in ament_share_dirs())]
    candidates += [Path(sys.prefix) / "share" / "cityscapes_seg_ros" / "kernels"]
    for folder in candidates:
        if all((folder / record.folder).is_dir() for record in OPS.values()):
            return folder
    return None


def build_root() -> Path:
    """Where just-in-time builds are cached."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"]) / "cityscapes_seg_ros"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cityscapes_seg_ros" / "compiled_ops"


# ----------------------------------------------------------------------------------------------- loading


def _load(record: OpRecord) -> tuple[Any, str | None]:
    reason = _ruled_out(record, _switch())
    if reason is not None:
        log.info("compiled op %s not used (%s); its fallback is used", record.name, reason)
        return None, reason
    try:
        op, how = _find_or_build(record)
    except Exception as exc:  # noqa: BLE001 - a failed build must never break the caller: it has a fallback
        reason = f"build failed: {type(exc).__name__}: {str(exc).strip()[-2000:]}"
        log.warning("compiled op %s unavailable, its fallback is used: %s", record.name, reason)
        return None, reason
    log.info("compiled op %s: %s", record.name, how)
    return op, None


def _switch() -> Switch:
    switch = read_switch()
    for warning in switch.warnings:
        with _guard:
            if warning in _switch_warnings_logged:
                continue
            _switch_warnings_logged.add(warning)
        log.warning("%s", warning)
    return switch


def _ruled_out(record: OpRecord, switch: Switch) -> str | None:
    if switch.mode == "off":
        return f"compiled ops are off: {switch.setting}"
    if record.device_type != "cuda":
        return None
    if switch.mode == "cpu":
        return f"CUDA ops not requested: {switch.setting}"
    if switch.mode == "auto":
        import torch

        if not torch.cuda.is_available():
            return "torch.cuda is not available"
    return None


def _find_or_build(record: OpRecord) -> tuple[Any, str]:
    root = kernels_root()
    prebuilt = _prebuilt(record)
    if root is None:
        if prebuilt is not None:
            return prebuilt, "built at install (no kernel sources here to check it against)"
        raise FileNotFoundError(f"kernel sources not found; set {KERNELS_ENV} to the kernels folder")
    digest = record.digest(root)
    if prebuilt is not None:
        if _digest_of(prebuilt) == digest:
            return prebuilt, "built at install"
        log.info(
            "compiled op %s: the install built it from other sources or flags than %s now; rebuilding",
            record.name,
            root / record.folder,
        )
    started = time.monotonic()
    build = _build_torch_op if record.kind == "torch" else _build_library
    op, where = build(record, root, digest)
    return op, f"built just in time ({time.monotonic() - started:.1f} s, cached in {where})"


def _prebuilt(record: OpRecord) -> Any | None:
    if record.kind == "torch":
        import torch  # noqa: F401  (a torch extension module needs libtorch loaded first)

        try:
            return importlib.import_module(record.module_name)
        except ImportError:
            return None
    path = PACKAGE_DIR / f"_{record.name}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
    if not path.is_file():
        return None
    try:
        return ctypes.CDLL(str(path))
    except OSError as exc:
        log.info("compiled op %s: the one built at install does not load (%s); rebuilding", record.name, exc)
        return None


def _digest_of(op: Any) -> str | None:
    if isinstance(op, ctypes.CDLL):
        try:
            function = op.csr_source_digest
        except AttributeError:
            return None
        function.restype = ctypes.c_char_p
        return function().decode()
    return getattr(op, "source_digest", None)


def _build_name(record: OpRecord, digest: str, toolchain: tuple) -> str:
    """Changes with the sources, the flags, the toolchain and Python: never a stale or foreign build."""
    key = hashlib.sha1(repr((digest, toolchain, sys.version_info[:2], sys.platform)).encode()).hexdigest()[:12]
    return f"csr_{record.name}_{key}"


# ---------------------------------------------------------------------------------------------- building


def _build_torch_op(record: OpRecord, root: Path, digest: str) -> tuple[Any, Path]:
    import torch
    from torch.utils import cpp_extension

    folder = root / record.folder
    define = digest_define(digest)
    options: dict[str, Any] = {}
    arch_list = None
    if record.device_type == "cuda":
        if torch.version.cuda is None:
            raise RuntimeError("this torch build has no CUDA support")
        if cpp_extension.CUDA_HOME is None and shutil.which("nvcc") is None:
            raise RuntimeError("CUDA_HOME is not set and nvcc is not on PATH")
        arch_list = cuda_arch_list(_local_cuda_arch())
        options["extra_cuda_cflags"] = [*record.cuda_flags, define]
    name = _build_name(record, digest, (torch.__version__, torch.version.cuda, arch_list))
    build_dir = build_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    saved_arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST")
    try:
        if arch_list is not None:
            os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
        module = cpp_extension.load(
            name=name,
            sources=[str(folder / source) for source in record.sources],
            extra_cflags=[*record.cflags, define],
            extra_ldflags=list(record.ldflags),
            extra_include_paths=[str(folder)],
            build_directory=str(build_dir),
            verbose=False,
            **options,
        )
    finally:
        if arch_list is not None:
            if saved_arch_list is None:
                os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = saved_arch_list
    return module, build_dir


def _local_cuda_arch() -> str | None:
    import torch

    try:
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return f"{major}.{minor}"
    except Exception:  # noqa: BLE001 - no usable device: build for the default architectures
        pass
    return None


def _compiler() -> list[str]:
    if os.environ.get("CXX"):
        return shlex.split(os.environ["CXX"])
    for name in ("c++", "g++", "clang++"):
        if shutil.which(name):
            return [name]
    raise RuntimeError("no C++ compiler found (set CXX)")


def _build_library(record: OpRecord, root: Path, digest: str) -> tuple[ctypes.CDLL, Path]:
    compiler = _compiler()
    build_dir = build_root() / _build_name(record, digest, tuple(compiler))
    target = build_dir / f"lib{record.name}.so"
    if not target.is_file():
        build_dir.mkdir(parents=True, exist_ok=True)
        # Built under a name of its own, then renamed: processes building at once never load a partial file.
        partial = build_dir / f".{target.name}.{os.getpid()}.{threading.get_ident()}"
        folder = root / record.folder
        command = [
            *compiler,
            *record.cflags,
            digest_define(digest),
            f"-I{folder}",
            "-shared",
            *(str(folder / source) for source in record.sources),
            "-o",
            str(partial),
            *record.ldflags,
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except OSError as exc:
            raise RuntimeError(f"{shlex.join(command)}: {exc}") from None
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            output = (result.stderr or result.stdout).strip()[-1500:]
            raise RuntimeError(f"{shlex.join(command)} exited with {result.returncode}: {output}")
        os.replace(partial, target)
    return ctypes.CDLL(str(target)), build_dir
