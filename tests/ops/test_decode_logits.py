"""The class decision of resized low-resolution logits (``ops.score_decode.decode_logits``): the compiled CPU
op, the torch fallback and the CUDA op against the reference F.interpolate + decode_scores; the GPU label
histogram; an nvcc compile-only check of the CUDA op where no GPU is."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cityscapes_seg_ros.models.layers import resize_bilinear
from cityscapes_seg_ros.ops import compiled, score_decode
from cityscapes_seg_ros.ops.op_records import OPS, read_switch
from cityscapes_seg_ros.ops.score_decode import (
    CUDA_OP_NAME,
    OP_NAME,
    decode_logits,
    decode_scores,
    tensor_label_histogram,
    torch_resize_fuses,
)

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")

# (channels, input height, input width, output height, output width): upscale by 4 and 8 (the head's output
# to the image), non-integer factors, odd sizes, a downscale, one axis unchanged.
SHAPES = [
    (19, 32, 64, 128, 256),
    (19, 16, 32, 128, 256),
    (19, 13, 17, 61, 150),
    (150, 16, 32, 71, 129),
    (150, 9, 23, 33, 203),
    (19, 40, 30, 17, 123),
    (19, 5, 37, 5, 301),
]


@pytest.fixture(scope="module")
def cpu_op():
    switch = read_switch()
    if switch.mode == "off":
        pytest.skip(f"compiled ops switched off: {switch.setting}")
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler on PATH: the compiled score decode op cannot be built")
    module = compiled.load(OP_NAME)
    assert module is not None, f"score decode op build failed: {compiled.unavailable_reason(OP_NAME)}"
    return module


@pytest.fixture(scope="module")
def cuda_op():
    if not HAS_CUDA:
        pytest.skip("no CUDA device")
    module = compiled.load(CUDA_OP_NAME)
    assert module is not None, f"CUDA score decode op build failed: {compiled.unavailable_reason(CUDA_OP_NAME)}"
    return module


def random_logits(shape, seed: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * 4).to(dtype).to(device)


def reference(logits: torch.Tensor, size) -> tuple[torch.Tensor, torch.Tensor]:
    """What decode_logits replaces: the full-resolution logits, then the decision on them."""
    return decode_scores(resize_bilinear(logits[None].float(), size)[0], from_logits=True)


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).abs() / expected.abs()).max().item()


def near_ties(logits: torch.Tensor, size, labels: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Where labels differ, whether the resized logits of the two decisions are within 1e-6 relative (a tie that
    the last bit of the arithmetic decides); the logit of label 255 is the highest of the unused channels."""
    full = resize_bilinear(logits[None].float(), size)[0]
    channels = full.shape[0]
    unused = full[19:].amax(dim=0) if channels > 19 else torch.full_like(full[0], -torch.inf)

    def logit_of(label_map: torch.Tensor) -> torch.Tensor:
        picked = full.gather(0, label_map.long().clamp_max(channels - 1)[None])[0]
        return torch.where(label_map == 255, unused, picked)

    differ = labels != expected
    a, b = logit_of(labels)[differ], logit_of(expected)[differ]
    return (a - b).abs() <= 1e-6 * torch.maximum(a.abs(), b.abs())


# ------------------------------------------------------------------------------------------------- CPU


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "C{}_{}x{}_to_{}x{}".format(*s))
def test_compiled_resize_is_bit_identical_to_interpolate(cpu_op, shape):
    channels, height, width, out_height, out_width = shape
    logits = random_logits((channels, height, width), seed=out_width)
    expected = resize_bilinear(logits[None], (out_height, out_width))[0]
    resized = cpu_op.resize_bilinear(logits, out_height, out_width, torch_resize_fuses("cpu"))
    assert torch.equal(resized, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "C{}_{}x{}_to_{}x{}".format(*s))
def test_compiled_decision_equals_resize_then_decide(cpu_op, shape, dtype):
    channels, height, width, out_height, out_width = shape
    logits = random_logits((channels, height, width), seed=height * 7 + channels, dtype=dtype)
    labels, confidence = decode_logits(logits, (out_height, out_width), backend="cpu")
    expected_labels, expected_confidence = reference(logits, (out_height, out_width))
    assert labels.dtype == torch.uint8 and confidence.dtype == torch.float32
    assert labels.shape == confidence.shape == (out_height, out_width)
    assert torch.equal(labels, expected_labels)
    assert relative_error(confidence, expected_confidence) <= 1e-6
    assert (labels == 255).any() == (channels > 19)  # the 150-class head's unused channels win somewhere


def test_torch_fallback_in_bands_equals_the_compiled_decision(cpu_op, monkeypatch):
    logits = random_logits((150, 11, 21), seed=4)
    size = (53, 170)
    labels, confidence = decode_logits(logits, size, backend="cpu")
    whole_labels, whole_confidence = decode_logits(logits, size, backend="torch")  # small: F.interpolate
    monkeypatch.setattr(score_decode, "_FALLBACK_WHOLE_ELEMENTS", 0)
    monkeypatch.setattr(score_decode, "_FALLBACK_BAND_ELEMENTS", 150 * 170 * 4)  # 4 rows per band, 14 bands
    band_labels, band_confidence = decode_logits(logits, size, backend="torch")
    for fallback_labels, fallback_confidence in ((whole_labels, whole_confidence), (band_labels, band_confidence)):
        assert torch.equal(fallback_labels, labels)
        assert relative_error(fallback_confidence, confidence) <= 1e-5


def test_the_resize_arithmetic_found_for_torch_reproduces_interpolate():
    logits = random_logits((3, 21, 34), seed=12)
    size = (83, 137)
    fused = torch_resize_fuses("cpu")
    assert torch.equal(score_decode._resize_torch(logits, size, fused), resize_bilinear(logits[None], size)[0])
    assert not torch.equal(score_decode._resize_torch(logits, size, not fused), resize_bilinear(logits[None], size)[0])


@pytest.mark.parametrize("backend", ["cpu", "torch", "torch in bands"])
def test_unused_channels_become_ignore_and_ties_go_to_the_first_class(cpu_op, monkeypatch, backend):
    if backend == "torch in bands":
        monkeypatch.setattr(score_decode, "_FALLBACK_WHOLE_ELEMENTS", 0)
        backend = "torch"
    base = random_logits((1, 6, 8), seed=2)[0]
    logits = torch.full((150, 6, 8), -50.0)
    logits[7] = logits[18] = base + 20.0  # identical maps: a tie on every pixel, class 7 wins
    logits[40, :, 4:] = 100.0  # an unused channel of the 150-class head wins on the right half
    labels, confidence = decode_logits(logits, (24, 128), backend=backend)
    assert set(labels[:, :60].unique().tolist()) == {7}
    assert set(labels[:, 68:].unique().tolist()) == {255}
    assert confidence[:, :60].sub(0.5).abs().max().item() <= 1e-6  # two equal winners: probability 1/2
    labels, _ = decode_logits(logits, (24, 128), num_valid=150, ignore=254, backend=backend)
    assert set(labels[:, 68:].unique().tolist()) == {40}


def test_bad_arguments_are_rejected_clearly():
    logits = torch.zeros(3, 4, 5)
    with pytest.raises(ValueError, match=r"\[C, h, w\]"):
        decode_logits(torch.zeros(4, 5), (8, 10))
    with pytest.raises(ValueError, match="size must be"):
        decode_logits(logits, (8, 0))
    with pytest.raises(ValueError, match="floating point"):
        decode_logits(logits.long(), (8, 10))
    with pytest.raises(ValueError, match="unknown backend"):
        decode_logits(logits, (8, 10), backend="gpu")
    with pytest.raises(ValueError, match="num_valid"):
        decode_logits(logits, (8, 10), ignore=256)
    with pytest.raises(RuntimeError, match="takes CUDA tensors"):
        decode_logits(logits, (8, 10), backend="cuda")


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_tensor_label_histogram_counts_pixels_and_sums_confidence(cpu_op, backend):
    rng = np.random.default_rng(5)
    labels = rng.choice(np.array([0, 3, 18, 255], np.uint8), size=(301, 517))
    confidence = rng.random(labels.shape, dtype=np.float32)
    counts, sums = tensor_label_histogram(torch.from_numpy(labels), torch.from_numpy(confidence), backend=backend)
    assert counts.dtype == torch.int64 and sums.dtype == torch.float64 and counts.shape == sums.shape == (256,)
    np.testing.assert_array_equal(counts.numpy(), np.bincount(labels.ravel(), minlength=256))
    expected = np.bincount(labels.ravel(), weights=confidence.ravel(), minlength=256)
    np.testing.assert_allclose(sums.numpy(), expected, rtol=1e-12)
    counts_only, zeros = tensor_label_histogram(torch.from_numpy(labels), backend=backend)
    assert torch.equal(counts_only, counts) and not zeros.any()


# ----------------------------------------------------------------------------------------- CUDA, compile


def _torch_cuda_macro_stub(tmp_path: Path) -> tuple[str, ...]:
    """CPU wheels of torch lack the generated c10/cuda/impl/cuda_cmake_macros.h; supply it for the check."""
    from torch.utils import cpp_extension

    if any((Path(p) / "c10/cuda/impl/cuda_cmake_macros.h").is_file() for p in cpp_extension.include_paths()):
        return ()
    stub = tmp_path / "stub_include" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    return (str(tmp_path / "stub_include"),)


def test_cuda_sources_compile_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: cannot compile-check the CUDA op")
    from torch.utils import cpp_extension

    record = OPS[CUDA_OP_NAME]
    folder = compiled.kernels_root() / record.folder
    includes = [*cpp_extension.include_paths(), *_torch_cuda_macro_stub(tmp_path), str(folder)]
    includes.append(str(Path(sys.base_prefix) / "include" / f"python{sys.version_info.major}.{sys.version_info.minor}"))
    for source in record.sources:
        if not source.endswith(".cu"):
            continue
        output = tmp_path / f"{source}.o"
        command = [
            nvcc,
            "-c",
            str(folder / source),
            "-o",
            str(output),
            *record.cuda_flags,
            "-Xcompiler",
            "-fPIC",
            "--expt-relaxed-constexpr",
            "-D__CUDA_NO_HALF_OPERATORS__",
            "-D__CUDA_NO_HALF_CONVERSIONS__",
            "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
            "-D__CUDA_NO_HALF2_OPERATORS__",
            "--threads",
            "0",
            "-w",
        ]
        for include in includes:
            command += ["-I", include]
        command += ["-gencode", "arch=compute_90,code=sm_90"]  # one architecture: the device code has no per-arch paths
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]
        binary = output.read_bytes()
        assert b"sm_90" in binary
        for kernel in (b"decode_logits_kernel", b"decode_scores_kernel", b"label_histogram_kernel"):
            assert kernel in binary, kernel


# ------------------------------------------------------------------------------------------------ CUDA


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", [*SHAPES, (150, 128, 256, 1024, 2048)], ids=lambda s: "C{}_{}x{}_to_{}x{}".format(*s))
def test_cuda_decision_equals_resize_then_decide_on_the_gpu(cuda_op, shape, dtype):
    channels, height, width, out_height, out_width = shape
    size = (out_height, out_width)
    logits = random_logits((channels, height, width), seed=height * 5 + channels, dtype=dtype, device="cuda")
    labels, confidence = decode_logits(logits, size, backend="cuda")
    assert labels.is_cuda and labels.dtype == torch.uint8 and confidence.dtype == torch.float32
    expected_labels, expected_confidence = reference(logits, size)  # torch on the GPU: softmax, then max
    differ = labels != expected_labels
    ties = near_ties(logits, size, labels, expected_labels)
    print(f"{shape} {dtype}: {int(differ.sum())} of {labels.numel()} labels differ, all near ties: {bool(ties.all())}")
    assert ties.all(), f"{int((~ties).sum())} labels differ without a tie"
    assert int(differ.sum()) <= labels.numel() // 10000
    assert relative_error(confidence, expected_confidence) <= 1e-5


@needs_cuda
def test_cuda_resize_matches_torch_and_the_cpu_decision(cuda_op, cpu_op):
    logits = random_logits((150, 16, 32), seed=31)
    size = (71, 129)
    resized = cuda_op.resize_bilinear(logits.cuda(), *size, torch_resize_fuses("cuda"))
    assert torch.equal(resized, resize_bilinear(logits[None].cuda(), size)[0])
    gpu_labels, gpu_confidence = decode_logits(logits.cuda(), size)
    cpu_labels, cpu_confidence = decode_logits(logits, size)
    mismatch = int((gpu_labels.cpu() != cpu_labels).sum())
    print(f"GPU vs CPU decision: {mismatch} of {cpu_labels.numel()} labels differ")
    assert near_ties(logits, size, gpu_labels.cpu(), cpu_labels).all()  # the same where torch rounds alike
    assert relative_error(gpu_confidence.cpu(), cpu_confidence) <= 1e-5


@needs_cuda
def test_cuda_decision_never_makes_the_full_resolution_logits(cuda_op):
    logits = random_logits((150, 128, 256), seed=3, device="cuda")
    decode_logits(logits, (1024, 2048))  # warm-up: the op is loaded, the probe done
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    decode_logits(logits, (1024, 2048))
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    full = 150 * 1024 * 2048 * 4  # 1.2 GB of float32 logits
    assert extra <= 1024 * 2048 * 5 + (1 << 20), (
        f"{extra / 2**20:.1f} MiB for the decision (full logits: {full / 2**20:.0f} MiB)"
    )


@needs_cuda
@pytest.mark.parametrize("from_logits", [True, False])
def test_cuda_decode_scores_equals_the_torch_decision(cuda_op, from_logits):
    scores = random_logits((150, 67, 301), seed=8, device="cuda")
    if not from_logits:
        scores = torch.softmax(scores, dim=0)
    labels, confidence = decode_scores(scores, from_logits, backend="cuda")
    expected_labels, expected_confidence = score_decode._decode_torch(scores, from_logits, 19, 255)
    assert labels.is_cuda
    assert torch.equal(labels, expected_labels)
    tolerance = 1e-5 if from_logits else 0.0
    assert relative_error(confidence, expected_confidence) <= tolerance
    half_labels, _ = decode_scores(scores.half(), from_logits, backend="cuda")
    assert torch.equal(half_labels, score_decode._decode_torch(scores.half().float(), from_logits, 19, 255)[0])


@needs_cuda
def test_cuda_label_histogram_equals_bincount(cuda_op):
    generator = torch.Generator().manual_seed(6)
    labels = torch.randint(0, 20, (1023, 2047), generator=generator, dtype=torch.uint8)
    labels[labels == 19] = 255
    labels[:, 100:900] = 7  # long runs of one label, as in a real segmentation
    confidence = torch.rand(labels.shape, generator=generator)
    counts, sums = tensor_label_histogram(labels.cuda(), confidence.cuda(), backend="cuda")
    assert counts.is_cuda and counts.dtype == torch.int64 and sums.dtype == torch.float64
    flat = labels.reshape(-1).long()
    assert torch.equal(counts.cpu(), torch.bincount(flat, minlength=256))
    expected = torch.bincount(flat, weights=confidence.reshape(-1).double(), minlength=256)
    torch.testing.assert_close(sums.cpu(), expected, rtol=1e-9, atol=0)
    odd = labels[1:, 3:]  # not a multiple of the vector width, and not contiguous
    counts, _ = tensor_label_histogram(odd.cuda(), backend="cuda")
    assert torch.equal(counts.cpu(), torch.bincount(odd.reshape(-1).long(), minlength=256))
