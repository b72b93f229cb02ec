"""The one loader of the compiled ops (``cityscapes_seg_ros.ops.compiled``) and its switch.

Builds here are real: the PNG unfilter library compiles in about a second, so the loader's paths (an op built
at install, a stale one, a just-in-time build, a failed build, concurrent loads) are exercised with it; the
torch ops' failure path with a source that does not compile (it fails at once).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from support.no_torch import BLOCK_TORCH

from cityscapes_seg_ros import ops
from cityscapes_seg_ros.evaluation.label_png import decode_grey_png
from cityscapes_seg_ros.evaluation.scoring import read_label_image
from cityscapes_seg_ros.ops import compiled, score_decode
from cityscapes_seg_ros.ops.op_records import OLD_SWITCH_ENV, OPS, SWITCH_ENV, read_switch
from cityscapes_seg_ros.ops.png_unfilter import png_unfilter

REPO = Path(__file__).resolve().parents[2]
HAS_COMPILER = any(shutil.which(c) for c in ("c++", "g++", "clang++"))
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler on PATH")
SESSION_CACHE = os.environ.get("XDG_CACHE_HOME")  # where this session's builds are cached


@pytest.fixture
def fresh_loader(monkeypatch, tmp_path):
    """The loader as a new process finds it: nothing loaded, no switch set, an empty build cache."""
    monkeypatch.setattr(compiled, "_results", {})
    monkeypatch.setattr(compiled, "_switch_warnings_logged", set())
    for name in (SWITCH_ENV, OLD_SWITCH_ENV, "TORCH_EXTENSIONS_DIR", "CXX", compiled.KERNELS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return compiled


def kernels_copy(tmp_path: Path, monkeypatch) -> Path:
    """A copy of the kernel sources that the loader reads instead of the repository's, and no op installed
    (``scripts/setup.sh`` builds them into the package folder; these tests build from the copy)."""
    root = tmp_path / "kernels"
    shutil.copytree(compiled.kernels_root(), root)
    monkeypatch.setenv(compiled.KERNELS_ENV, str(root))
    monkeypatch.setattr(compiled, "PACKAGE_DIR", tmp_path / "nothing-installed")
    return root


def filtered_rows(samples: np.ndarray) -> bytes:
    """Rows with the Sub filter (type 1): each byte minus the one to its left."""
    left = np.concatenate([np.zeros((samples.shape[0], 1), np.int32), samples[:, :-1].astype(np.int32)], axis=1)
    diff = ((samples.astype(np.int32) - left) % 256).astype(np.uint8)
    return b"".join(bytes([1]) + row.tobytes() for row in diff)


def png_chunks(samples: np.ndarray) -> bytes:
    """The chunks of a grey 8-bit PNG of ``samples`` (after the signature)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", samples.shape[1], samples.shape[0], 8, 0, 0, 0, 0)
    idat = zlib.compress(filtered_rows(samples))
    return chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


SAMPLES = np.random.default_rng(0).integers(0, 34, (9, 13), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------- switch


def test_the_switch_reads_its_modes_and_the_old_name_with_a_deprecation_warning():
    assert read_switch({}).mode == "auto" and not read_switch({}).warnings
    for value, mode in (("off", "off"), ("0", "off"), ("cpu", "cpu"), ("CUDA", "cuda"), ("auto", "auto")):
        assert read_switch({SWITCH_ENV: value}).mode == mode and not read_switch({SWITCH_ENV: value}).warnings
    old = read_switch({OLD_SWITCH_ENV: "0"})
    assert old.mode == "off" and old.setting == f"{OLD_SWITCH_ENV}=0"
    assert any("deprecated" in w and f"{SWITCH_ENV}=off" in w for w in old.warnings)
    both = read_switch({SWITCH_ENV: "cpu", OLD_SWITCH_ENV: "0"})
    assert both.mode == "cpu" and any("ignored" in w for w in both.warnings)
    unknown = read_switch({SWITCH_ENV: "fast"})
    assert unknown.mode == "auto" and any("'fast' not understood" in w for w in unknown.warnings)


def test_the_old_switch_still_switches_every_op_off_and_warns_once(fresh_loader, monkeypatch, caplog):
    monkeypatch.setenv(OLD_SWITCH_ENV, "0")
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        assert all(compiled.load(name) is None for name in OPS)
    deprecations = [r for r in caplog.records if r.levelno == logging.WARNING and "deprecated" in r.getMessage()]
    assert len(deprecations) == 1
    assert all(f"{OLD_SWITCH_ENV}=0" in compiled.unavailable_reason(name) for name in OPS)


def test_switched_off_every_caller_takes_its_fallback_with_the_same_results(fresh_loader, monkeypatch, tmp_path):
    logits = torch.randn(19, 31, 45, generator=torch.Generator().manual_seed(1)) * 5
    labels = np.random.default_rng(2).choice(np.array([0, 7, 255], np.uint8), (31, 45))
    confidence = np.random.default_rng(3).random((31, 45), dtype=np.float32)
    generator = torch.Generator().manual_seed(4)
    inp = torch.randn(1, 8, 9, 32, generator=generator)
    off = torch.randn(1, 8, 9, 2 * 9 * 2, generator=generator)
    msk = torch.softmax(torch.randn(1, 8, 9, 2, 9, generator=generator), -1).reshape(1, 8, 9, 18)
    dcnv3_args = (3, 3, 1, 1, 1, 1, 1, 1, 2, 16, 1.0)

    monkeypatch.setenv(SWITCH_ENV, "off")
    assert ops.resolve_backend("cpu") == "torch"
    assert "compiled ops are off" in compiled.unavailable_reason("dcnv3_cpu")
    sampled = ops.dcnv3(inp, off, msk, *dcnv3_args)
    assert torch.equal(sampled, ops.dcnv3(inp, off, msk, *dcnv3_args, backend="torch"))
    decided = ops.decode_scores(logits, from_logits=True)
    assert all(
        torch.equal(a, b) for a, b in zip(decided, ops.decode_scores(logits, True, backend="torch"), strict=True)
    )
    with pytest.raises(RuntimeError, match="compiled ops are off"):
        ops.decode_scores(logits, from_logits=True, backend="cpu")
    counts, sums = ops.label_histogram(labels, confidence)
    np.testing.assert_array_equal(counts, np.bincount(labels.ravel(), minlength=256))
    assert png_unfilter(filtered_rows(SAMPLES), *SAMPLES.shape, 8) is None
    png = tmp_path / "labels.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunks(SAMPLES))
    assert decode_grey_png(png.read_bytes()) is None  # the evaluator reads it with OpenCV / PIL instead

    if not HAS_COMPILER:
        return
    monkeypatch.setenv(SWITCH_ENV, "auto")  # the compiled ops where they build: the same decisions
    monkeypatch.setattr(compiled, "_results", {})
    if SESSION_CACHE is None:
        monkeypatch.delenv("XDG_CACHE_HOME")
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", SESSION_CACHE)
    assert ops.resolve_backend("cpu") == "cpu"
    assert (ops.dcnv3(inp, off, msk, *dcnv3_args) - sampled).abs().max().item() <= 1e-5 * sampled.abs().max().item()
    compiled_labels, compiled_confidence = ops.decode_scores(logits, from_logits=True)
    assert torch.equal(compiled_labels, decided[0])
    torch.testing.assert_close(compiled_confidence, decided[1], rtol=1e-6, atol=0)
    compiled_counts, compiled_sums = ops.label_histogram(labels, confidence)
    np.testing.assert_array_equal(compiled_counts, counts)
    np.testing.assert_allclose(compiled_sums, sums, rtol=1e-12)
    np.testing.assert_array_equal(decode_grey_png(png.read_bytes()), SAMPLES)


def test_cuda_ops_are_not_wanted_without_a_gpu_or_with_the_cpu_switch(fresh_loader, monkeypatch):
    monkeypatch.setenv(SWITCH_ENV, "cpu")
    assert compiled.load("dcnv3_cuda") is None
    assert compiled.unavailable_reason("dcnv3_cuda") == f"CUDA ops not requested: {SWITCH_ENV}=cpu"
    if not torch.cuda.is_available():
        monkeypatch.setattr(compiled, "_results", {})
        monkeypatch.setenv(SWITCH_ENV, "auto")
        assert compiled.load("dcnv3_cuda") is None
        assert compiled.unavailable_reason("dcnv3_cuda") == "torch.cuda is not available"


@needs_compiler
def test_a_colcon_install_finds_and_builds_from_its_installed_kernels(fresh_loader, monkeypatch, tmp_path):
    """colcon puts the package in install/<pkg>/lib/python3.X/site-packages and kernels/ (CMakeLists.txt) in
    install/<pkg>/share/<pkg>: neither beside the package nor under sys.prefix. The ament index finds it."""
    prefix = tmp_path / "install" / "cityscapes_seg_ros"
    installed = prefix / "share" / "cityscapes_seg_ros" / "kernels"
    shutil.copytree(compiled.kernels_root(), installed)
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "cityscapes_seg_ros"
    marker.parent.mkdir(parents=True)
    marker.touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join([str(tmp_path / "install" / "other"), str(prefix)]))
    monkeypatch.setattr(compiled, "PACKAGE_DIR", prefix / "lib" / "python3" / "site-packages" / "cityscapes_seg_ros")
    monkeypatch.setattr(compiled.sys, "prefix", str(tmp_path / "venv"))
    assert compiled.kernels_root() == installed
    assert compiled.load("png_unfilter") is not None, compiled.unavailable_reason("png_unfilter")
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    assert compiled.kernels_root() is None  # and without the install on the path, none is found


def test_unknown_op_names_are_an_error():
    with pytest.raises(ValueError, match="unknown compiled op 'dcnv4'"):
        compiled.load("dcnv4")


# ------------------------------------------------------------------------------------------------ loading


def prebuilt_name(name: str) -> str:
    return f"_{name}{sysconfig.get_config_var('EXT_SUFFIX')}"


@needs_compiler
def test_an_op_built_at_install_is_used_while_its_digest_matches_and_rebuilt_when_stale(
    fresh_loader, monkeypatch, tmp_path
):
    root = kernels_copy(tmp_path, monkeypatch)
    record = OPS["png_unfilter"]
    built = compiled.load(record.name)  # nothing installed: built just in time, into the cache
    assert built is not None and Path(built._name).is_relative_to(compiled.build_root())
    assert compiled._digest_of(built) == record.digest(root)

    install = tmp_path / "site-packages" / "cityscapes_seg_ros"  # as setup.py would have left it
    install.mkdir(parents=True)
    shutil.copy(built._name, install / prebuilt_name(record.name))
    monkeypatch.setattr(compiled, "PACKAGE_DIR", install)
    monkeypatch.setattr(compiled, "_results", {})
    assert Path(compiled.load(record.name)._name) == install / prebuilt_name(record.name)

    with (root / record.folder / "png_unfilter.h").open("a") as header:
        header.write("// an edit after the install\n")
    monkeypatch.setattr(compiled, "_results", {})
    rebuilt = compiled.load(record.name)
    assert Path(rebuilt._name).is_relative_to(compiled.build_root()) and rebuilt._name != built._name
    assert compiled._digest_of(rebuilt) == record.digest(root) != compiled._digest_of(built)
    np.testing.assert_array_equal(png_unfilter(filtered_rows(SAMPLES), *SAMPLES.shape, 8), SAMPLES)


@needs_compiler
def test_setup_py_builds_the_library_ops_without_torch_with_the_digest_the_loader_expects(
    fresh_loader, monkeypatch, tmp_path
):
    build_lib, build_temp = tmp_path / "lib", tmp_path / "temp"
    script = (
        f"{BLOCK_TORCH}\n"
        f"sys.argv = ['setup.py', '-q', 'build_ext', '--build-lib', {str(build_lib)!r}, '--build-temp', "
        f"{str(build_temp)!r}]\n"
        "import runpy\n"
        "runpy.run_path('setup.py', run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    built = sorted(p.name for p in (build_lib / "cityscapes_seg_ros").iterdir())
    assert built == [prebuilt_name(r.name) for r in OPS.values() if r.kind == "library"]  # no torch: no torch op
    monkeypatch.setattr(compiled, "PACKAGE_DIR", build_lib / "cityscapes_seg_ros")
    library = compiled.load("png_unfilter")
    assert library is not None and Path(library._name).parent == build_lib / "cityscapes_seg_ros"
    assert not (tmp_path / "cache").exists()  # used as installed, nothing built just in time


@needs_compiler
def test_a_failed_build_is_one_warning_with_the_reason_and_the_fallback_is_used(
    fresh_loader, monkeypatch, tmp_path, caplog
):
    root = kernels_copy(tmp_path, monkeypatch)
    for folder, source in (("png_unfilter", "png_unfilter.cpp"), ("score_decode", "score_decode_cpu.cpp")):
        path = root / folder / source
        # A missing header is fatal at once (after an #error the compiler would still parse torch's headers).
        path.write_text('#include "deliberately_broken.h"\n' + path.read_text())
    logits = torch.randn(19, 6, 7, generator=torch.Generator().manual_seed(2))
    png = tmp_path / "labels.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunks(SAMPLES))
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        for _ in range(2):
            assert decode_grey_png(png.read_bytes()) is None
            np.testing.assert_array_equal(read_label_image(png), SAMPLES)
            labels, _ = score_decode.decode_scores(logits, from_logits=True)
            assert torch.equal(labels, score_decode.decode_scores(logits, True, backend="torch")[0])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # one per op, not one per call
    for name in ("png_unfilter", "score_decode_cpu"):
        (warning,) = [w for w in warnings if f"compiled op {name} " in w]
        assert "build failed" in warning and "deliberately_broken.h" in warning
        assert "deliberately_broken.h" in compiled.unavailable_reason(name)
    with pytest.raises(RuntimeError, match="deliberately_broken.h"):
        score_decode.decode_scores(logits, from_logits=True, backend="cpu")


@needs_compiler
def test_threads_loading_at_once_share_one_build(fresh_loader, monkeypatch, tmp_path):
    kernels_copy(tmp_path, monkeypatch)
    calls = tmp_path / "compiler_calls"
    compiler = tmp_path / "cxx"  # the real compiler, counting its calls
    real = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    compiler.write_text(f'#!/bin/sh\necho call >> "{calls}"\nexec "{real}" "$@"\n')
    compiler.chmod(compiler.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(compiler))
    barrier = threading.Barrier(4)
    loaded = []

    def load() -> None:
        barrier.wait()
        loaded.append(compiled.load("png_unfilter"))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 4 and loaded[0] is not None and all(op is loaded[0] for op in loaded)
    assert calls.read_text().count("call") == 1
