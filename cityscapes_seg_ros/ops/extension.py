"""The compiled DCNv3 core op (``kernels/dcnv3``): the op built at install time, else a first-use JIT build;
loading and Python wrappers.

One kernel source serves both devices: ``kernels/dcnv3/dcnv3_kernels.h`` holds the per-sample sampling and
accumulation code as ``__host__ __device__`` functions; ``dcnv3_cpu.cpp`` runs them with ``at::parallel_for``
(the CPU op), ``dcnv3_cuda.cu`` in CUDA kernels (the CUDA op). ``pip install`` builds them when torch is
importable at build time (``setup.py``: ``cityscapes_seg_ros._dcnv3_cpu`` / ``_dcnv3_cuda``;
``scripts/setup.sh`` installs that way). Otherwise, or when the kernel sources changed since, they are built on
first use with ``torch.utils.cpp_extension.load`` (-O3, OpenMP) and cached under ``$TORCH_EXTENSIONS_DIR/cityscapes_seg_ros``
or ``~/.cache/cityscapes_seg_ros/torch_extensions``; later processes load the cached build in well under a
second.

Environment:

* ``CITYSCAPES_SEG_DCNV3_BUILD``: ``auto`` / ``1`` (default): the CPU op always, the CUDA op when torch has
  CUDA and a device is present and nvcc is found; ``cpu``: the CPU op only; ``cuda``: also try the CUDA op
  when no device is visible (torch must be a CUDA build); ``0`` / ``off``: no compiled op (the pure-PyTorch
  core is used).
* ``TORCH_CUDA_ARCH_LIST``: respected when set; otherwise the CUDA op is built for 8.7 (Jetson Orin), 8.9,
  9.0 (+PTX) and the local device's architecture.
* ``CITYSCAPES_SEG_DCNV3_SRC``: the folder holding the kernel sources, when not found next to the package.

Semantics are those of the official ``dcnv3_core_pytorch`` (see ``kernels/dcnv3/dcnv3_kernels.h``).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch

__all__ = [
    "BUILD_ENV",
    "DEFAULT_CUDA_ARCHS",
    "available_backends",
    "build_error",
    "dcnv3_backward",
    "dcnv3_compiled",
    "dcnv3_forward",
    "kernel_source_dir",
    "load_extension",
    "nvcc_compile_command",
    "source_digest",
]

log = logging.getLogger(__name__)

BUILD_ENV = "CITYSCAPES_SEG_DCNV3_BUILD"
SRC_ENV = "CITYSCAPES_SEG_DCNV3_SRC"
DEFAULT_CUDA_ARCHS = ("8.7", "8.9", "9.0")
DEVICE_TYPES = ("cpu", "cuda")
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

_CPU_SOURCES = ("dcnv3_cpu.cpp",)
_CUDA_SOURCES = ("dcnv3_cuda.cu", "dcnv3_cuda_bind.cpp")
_HEADERS = ("dcnv3_kernels.h", "dcnv3_host.h")

_lock = threading.Lock()
_modules: dict[str, ModuleType | None] = {}
_errors: dict[str, str] = {}


# ----------------------------------------------------------------------------------------------- build


def kernel_source_dir() -> Path | None:
    """The folder with the DCNv3 kernel sources, or None when it cannot be found."""
    candidates = []
    if os.environ.get(SRC_ENV):
        candidates.append(Path(os.environ[SRC_ENV]))
    candidates.append(Path(__file__).resolve().parents[2] / "kernels" / "dcnv3")  # source tree / editable
    candidates.append(Path(sys.prefix) / "share" / "cityscapes_seg_ros" / "kernels" / "dcnv3")
    for c in candidates:
        if (c / "dcnv3_kernels.h").is_file():
            return c
    return None


def _build_mode() -> str:
    mode = os.environ.get(BUILD_ENV, "auto").strip().lower()
    if mode in ("0", "off", "no", "false", "none", "skip"):
        return "off"
    if mode in ("", "1", "auto", "on", "yes", "true"):
        return "auto"
    if mode in ("cpu", "cuda"):
        return mode
    log.warning("%s=%r not understood (use 0, 1/auto, cpu or cuda); using auto", BUILD_ENV, mode)
    return "auto"


def _build_root() -> Path:
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"]) / "cityscapes_seg_ros"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cityscapes_seg_ros" / "torch_extensions"


def _cuda_arch_list() -> str:
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    archs = set(DEFAULT_CUDA_ARCHS)
    try:
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            archs.add(f"{major}.{minor}")
    except Exception:  # pragma: no cover - no usable device
        pass
    ordered = sorted(archs, key=lambda a: tuple(int(x) for x in a.split(".")))
    ordered[-1] += "+PTX"
    return ";".join(ordered)


def _cpu_flags() -> tuple[list[str], list[str]]:
    cflags = ["-O3", "-std=c++20"]
    ldflags: list[str] = []
    if sys.platform.startswith("linux"):
        cflags.append("-fopenmp")
        ldflags.append("-fopenmp")
    return cflags, ldflags


def _ext_name(device_type: str, src: Path, flags: list[str]) -> str:
    """A name that changes with the sources, the flags, torch and Python: never a stale or foreign build."""
    h = hashlib.sha1()
    files = _HEADERS + (_CPU_SOURCES if device_type == "cpu" else _CUDA_SOURCES)
    for f in files:
        h.update(f.encode())
        h.update((src / f).read_bytes())
    h.update(repr((flags, torch.__version__, torch.version.cuda, sys.version_info[:2], sys.platform)).encode())
    return f"csr_dcnv3_{device_type}_{h.hexdigest()[:12]}"


def source_digest(folder: Path) -> str:
    """Digest of the kernel sources (the same definition as setup.py's, which compiles it into its build)."""
    h = hashlib.sha1()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".h", ".cpp", ".cu"):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _prebuilt(device_type: str) -> ModuleType | None:
    """The op built by ``pip install`` (setup.py), unless the kernel sources have changed since."""
    try:
        module = importlib.import_module(f"cityscapes_seg_ros._dcnv3_{device_type}")
    except ImportError:
        return None
    src = kernel_source_dir()
    if src is not None and getattr(module, "source_digest", None) != source_digest(src):
        log.info("the installed DCNv3 %s op was built from other sources than %s; building them", device_type, src)
        return None
    return module


def _build(device_type: str, verbose: bool) -> ModuleType:
    from torch.utils import cpp_extension

    src = kernel_source_dir()
    if src is None:
        raise RuntimeError(f"kernel sources not found (set {SRC_ENV} to the kernels/dcnv3 folder)")
    cflags, ldflags = _cpu_flags()
    if device_type == "cpu":
        sources = [str(src / f) for f in _CPU_SOURCES]
        name = _ext_name("cpu", src, cflags + ldflags)
        kwargs = {}
    else:
        if torch.version.cuda is None:
            raise RuntimeError("this torch build has no CUDA support")
        if cpp_extension.CUDA_HOME is None and shutil.which("nvcc") is None:
            raise RuntimeError("CUDA_HOME is not set and nvcc is not on PATH")
        arch_list = _cuda_arch_list()
        cuda_flags = ["-O3", "-std=c++20"]
        sources = [str(src / f) for f in _CUDA_SOURCES]
        name = _ext_name("cuda", src, cflags + ldflags + cuda_flags + [arch_list])
        kwargs = {"extra_cuda_cflags": cuda_flags}
    build_dir = _build_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    old_arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    try:
        if device_type == "cuda":
            os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
        module = cpp_extension.load(
            name=name,
            sources=sources,
            extra_cflags=cflags,
            extra_ldflags=ldflags,
            extra_include_paths=[str(src)],
            build_directory=str(build_dir),
            verbose=verbose,
            **kwargs,
        )
    finally:
        if device_type == "cuda":
            if old_arch is None:
                os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = old_arch
    return module


def load_extension(device_type: str = "cpu", verbose: bool = False) -> ModuleType | None:
    """The compiled DCNv3 op for ``device_type`` ("cpu" or "cuda"), built on first use; None when unavailable.

    Never raises for a failed or skipped build: it logs one warning with the reason (see ``build_error``)
    and returns None, so callers fall back to the pure-PyTorch core. The module has ``forward(input, offset,
    mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
    group_channels, offset_scale, out=None)`` and ``backward(..., offset_scale, grad_output)``.
    """
    device_type = torch.device(device_type).type
    if device_type not in DEVICE_TYPES:
        return None
    if device_type in _modules:
        return _modules[device_type]
    with _lock:
        if device_type in _modules:
            return _modules[device_type]
        module: ModuleType | None = None
        reason = None
        mode = _build_mode()
        if mode == "off":
            reason = f"disabled by {BUILD_ENV}={os.environ.get(BUILD_ENV)}"
        elif device_type == "cuda" and mode == "cpu":
            reason = f"CUDA op not requested ({BUILD_ENV}=cpu)"
        elif device_type == "cuda" and mode == "auto" and not torch.cuda.is_available():
            reason = "torch.cuda is not available"
        if reason is None:
            try:
                module = _prebuilt(device_type) or _build(device_type, verbose)
            except Exception as exc:  # a failed build must never break inference
                reason = f"build failed: {type(exc).__name__}: {str(exc).strip()[-2000:]}"
        if module is None:
            _errors[device_type] = reason or "unknown"
            quiet = reason is not None and (reason.startswith("disabled") or reason.startswith("CUDA op not req")
                                            or reason == "torch.cuda is not available")
            (log.info if quiet else log.warning)("compiled DCNv3 %s op unavailable: %s", device_type, reason)
        _modules[device_type] = module
        return module


def build_error(device_type: str) -> str | None:
    """Why ``load_extension(device_type)`` returned None (None if it has not failed or not been tried)."""
    return _errors.get(torch.device(device_type).type)


def available_backends() -> list[str]:
    """Device types with a working compiled op, e.g. ["cpu"] or ["cpu", "cuda"] (builds on first call)."""
    return [d for d in DEVICE_TYPES if load_extension(d) is not None]


def nvcc_compile_command(
    output: str | os.PathLike,
    archs: tuple[str, ...] = DEFAULT_CUDA_ARCHS,
    extra_include_paths: tuple[str, ...] = (),
    nvcc: str = "nvcc",
) -> list[str]:
    """An ``nvcc -c`` command that compiles the CUDA op's kernels (dcnv3_cuda.cu) with torch's headers.

    Used by the tests as a compile-only check on machines without a GPU.
    """
    from torch.utils import cpp_extension

    src = kernel_source_dir()
    if src is None:
        raise RuntimeError(f"kernel sources not found (set {SRC_ENV})")
    cmd = [nvcc, "-c", str(src / "dcnv3_cuda.cu"), "-o", str(output), "-std=c++20", "-O3", "-Xcompiler", "-fPIC"]
    cmd += ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__", "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
            "-D__CUDA_NO_HALF2_OPERATORS__", "--expt-relaxed-constexpr"]
    for inc in [*cpp_extension.include_paths(), *extra_include_paths, str(src)]:
        cmd += ["-I", inc]
    for a in archs:
        num = a.replace(".", "")
        cmd += ["-gencode", f"arch=compute_{num},code=sm_{num}"]
    return cmd


# ---------------------------------------------------------------------------------------------- wrappers


def _check(input, offset, mask, kernel_h, kernel_w, group, group_channels):
    for name, t in (("input", input), ("offset", offset), ("mask", mask)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"dcnv3: {name} must be a tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"dcnv3: {name} must be 4-D (channels-last), got shape {tuple(t.shape)}")
    if input.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dcnv3: unsupported dtype {input.dtype} (float32, float16, bfloat16, float64)")
    if input.shape[3] != group * group_channels:
        raise ValueError(
            f"dcnv3: input has {input.shape[3]} channels, expected group*group_channels = {group * group_channels}"
        )
    k = kernel_h * kernel_w
    if offset.shape[3] != group * k * 2 or mask.shape[3] != group * k:
        raise ValueError(
            f"dcnv3: offset/mask must have {group * k * 2}/{group * k} channels, "
            f"got {offset.shape[3]}/{mask.shape[3]}"
        )
    if input.device.type not in DEVICE_TYPES:
        raise ValueError(f"dcnv3: compiled op supports cpu and cuda tensors, got {input.device}")
    if offset.device != input.device or mask.device != input.device:
        raise ValueError("dcnv3: input, offset and mask must be on the same device")


def _module_for(device: torch.device) -> ModuleType:
    module = load_extension(device.type)
    if module is None:
        raise RuntimeError(f"compiled DCNv3 {device.type} op unavailable: {build_error(device.type)}")
    return module


def dcnv3_forward(
    input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
    group, group_channels, offset_scale, out=None,
) -> torch.Tensor:  # fmt: skip
    """Forward of the compiled op, no autograd; ``out`` (optional) receives the result. Same args as
    ``dcnv3_compiled``."""
    _check(input, offset, mask, kernel_h, kernel_w, group, group_channels)
    module = _module_for(input.device)
    return module.forward(
        input.contiguous(), offset.to(input.dtype).contiguous(), mask.to(input.dtype).contiguous(),
        int(kernel_h), int(kernel_w), int(stride_h), int(stride_w), int(pad_h), int(pad_w),
        int(dilation_h), int(dilation_w), int(group), int(group_channels), float(offset_scale), out,
    )  # fmt: skip


def dcnv3_backward(
    input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
    group, group_channels, offset_scale, grad_output,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """grad_input, grad_offset, grad_mask of the compiled op for ``grad_output`` (no autograd)."""
    _check(input, offset, mask, kernel_h, kernel_w, group, group_channels)
    module = _module_for(input.device)
    gi, go, gm = module.backward(
        input.contiguous(), offset.to(input.dtype).contiguous(), mask.to(input.dtype).contiguous(),
        int(kernel_h), int(kernel_w), int(stride_h), int(stride_w), int(pad_h), int(pad_w),
        int(dilation_h), int(dilation_w), int(group), int(group_channels), float(offset_scale),
        grad_output.contiguous(),
    )  # fmt: skip
    return gi, go, gm


class _DCNv3Function(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, offset, mask, *args):
        ctx.args = args
        ctx.save_for_backward(input, offset, mask)
        return dcnv3_forward(input, offset, mask, *args)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        input, offset, mask = ctx.saved_tensors
        gi, go, gm = dcnv3_backward(input, offset, mask, *ctx.args, grad_output)
        return (gi, go, gm) + (None,) * len(ctx.args)


def dcnv3_compiled(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
    group: int,
    group_channels: int,
    offset_scale: float,
) -> torch.Tensor:
    """The DCNv3 core on the compiled op of ``input.device`` (CPU or CUDA), with autograd.

    Same signature and semantics as the official ``dcnv3_core_pytorch``: input [N, H, W, G*Cg], offset
    [N, Hout, Wout, G*K*2], mask [N, Hout, Wout, G*K] (softmaxed) -> [N, Hout, Wout, G*Cg]. fp32, fp16,
    bf16 (accumulated in fp32) and fp64. Offset and mask are cast to the input's dtype; non-contiguous
    tensors are made contiguous. Raises ValueError for bad shapes, RuntimeError when the op is unavailable.
    """
    _check(input, offset, mask, kernel_h, kernel_w, group, group_channels)
    offset = offset.to(input.dtype)
    mask = mask.to(input.dtype)
    args = (int(kernel_h), int(kernel_w), int(stride_h), int(stride_w), int(pad_h), int(pad_w),
            int(dilation_h), int(dilation_w), int(group), int(group_channels), float(offset_scale))  # fmt: skip
    if torch.is_grad_enabled() and (input.requires_grad or offset.requires_grad or mask.requires_grad):
        return _DCNv3Function.apply(input, offset, mask, *args)
    return dcnv3_forward(input, offset, mask, *args)
