#!/usr/bin/env bash
# Prepares the two git-ignored folders that travel with the one GPU call (scripts/gpu_check.sh, docs/gpu.md):
#   .whl/       wheels the GPU machine (Python 3.12, no network) lacks: mmcv 1.7.2 lite (no wheel on PyPI: built
#               here from its source with setuptools<70 and MMCV_WITH_OPS=0), mmsegmentation 0.30.0 and the pure
#               packages they need, and deflate (this package's label-PNG inflater) for CPython 3.12
#   .official/  InternImage's segmentation/ folder (configs, mmseg_custom, ops_dcnv3), `git archive` of a fetched
#               InternImage repository (bare or not): the argument, or $INTERNIMAGE_MIRROR
# Idempotent: a folder whose manifest (requirements, mirror commit) is current is left as it is. Then checked: a
# throwaway venv with torch, the carried wheels and the device's other packages loads the official Cityscapes
# config, builds the official UperNet InternImage-T from it and runs one small forward on the CPU.
#
#   bash scripts/prepare_gpu_carry.sh /work/.mirror/OpenGVLab+InternImage/repo
#   INTERNIMAGE_MIRROR=~/src/InternImage bash scripts/prepare_gpu_carry.sh --no-check
#   CHECK_TORCH=torch==2.13.0 bash scripts/prepare_gpu_carry.sh MIRROR    # the check's torch: a local wheel
set -euo pipefail
cd "$(dirname "$0")/.."

check=1
mirror=${INTERNIMAGE_MIRROR:-}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-check) check=0 ;;
    -*) echo "prepare_gpu_carry.sh: unknown argument $1 ([MIRROR] [--no-check])" >&2; exit 2 ;;
    *) mirror=$1 ;;
  esac
  shift
done
PY=${PYTHON:-python3}        # the interpreter of the throwaway venvs (any CPython 3.8+)
DEVICE_PYTHON=3.12           # the GPU machine's (/work/shared/notes/gpu.md)
# Downloaded as wheels for the device's Python (wcwidth and deflate are compiled; the rest are pure).
WHEELS=(mmsegmentation==0.30.0 addict yapf==0.43.0 "platformdirs>=3.5.1" prettytable wcwidth "deflate>=0.9")
MMCV=mmcv==1.7.2
work=$(mktemp -d /tmp/gpu_carry.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- .official ---------------------------------------------------------------------------------------------------
if [[ -n $mirror ]]; then
  commit=$(git -C "$mirror" rev-parse HEAD)
  if [[ -f .official/COMMIT && $(cat .official/COMMIT) == "$commit" && -d .official/segmentation ]]; then
    echo ".official: segmentation/ of InternImage $commit, already there"
  else
    rm -rf .official && mkdir -p .official
    # (a fetched snapshot may lack its largest blobs, outside segmentation/: git names them and goes on)
    git -C "$mirror" archive "$commit" segmentation 2>"$work/archive.err" | tar -x -C .official \
      || { cat "$work/archive.err" >&2; exit 1; }
    echo "$commit" >.official/COMMIT
    echo ".official: segmentation/ of InternImage $commit ($(du -sh .official | cut -f1))"
  fi
elif [[ -d .official/segmentation ]]; then
  echo ".official: kept (no mirror given)"
else
  echo "prepare_gpu_carry.sh: .official is missing: give the InternImage repository (fetched with the fetch tool:" \
    "github:OpenGVLab/InternImage) as the argument or \$INTERNIMAGE_MIRROR" >&2
  exit 1
fi

# --- .whl --------------------------------------------------------------------------------------------------------
manifest="$MMCV ${WHEELS[*]} for cp${DEVICE_PYTHON/./}"
if [[ -f .whl/MANIFEST && $(cat .whl/MANIFEST) == "$manifest" ]] && compgen -G ".whl/mmcv-1.7.2-*.whl" >/dev/null; then
  echo ".whl: already there ($(ls .whl/*.whl | wc -l) wheels)"
else
  rm -rf .whl && mkdir -p "$work/wheels"
  "$PY" -m venv "$work/build"
  # mmcv 1.7.2's setup.py needs setuptools' pkg_resources API that setuptools 70 removed.
  "$work/build/bin/pip" install -q "setuptools<70" wheel
  MMCV_WITH_OPS=0 "$work/build/bin/pip" wheel -q --no-deps --no-build-isolation -w "$work/wheels" "$MMCV"
  "$work/build/bin/pip" download -q --no-deps --only-binary=:all: --implementation cp \
    --python-version "$DEVICE_PYTHON" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 -d "$work/wheels" "${WHEELS[@]}"
  mkdir -p .whl && mv "$work"/wheels/*.whl .whl/
  echo "$manifest" >.whl/MANIFEST
  echo ".whl: $(ls .whl/*.whl | wc -l) wheels ($(du -sh .whl | cut -f1)): $(cd .whl && ls *.whl | tr '\n' ' ')"
fi

((check)) || exit 0

# --- check: the official model builds from the carried code and wheels -------------------------------------------
"$PY" -m venv "$work/check"
# torch (any build: the device has its CUDA one; CHECK_TORCH=torch==2.13.0 takes a local CPU wheel instead of
# downloading CUDA libraries) and what the device already has (notes/gpu.md), in one resolution
"$work/check/bin/pip" install -q "${CHECK_TORCH:-torch}" torchvision timm numpy opencv-python-headless pyyaml \
  matplotlib packaging pillow
# The carried releases: their wheels where they fit this interpreter, else the same version from the index.
carried=()
for wheel in .whl/*.whl; do
  name_version=$(basename "$wheel" | cut -d- -f1-2)
  carried+=("${name_version/-/==}")
done
"$work/check/bin/pip" install -q --no-deps --find-links .whl "${carried[@]}"
"$work/check/bin/python" - <<'PY'
import sys
from pathlib import Path

import torch

try:
    import torchvision  # noqa: F401  (mmcv and timm import it)
except RuntimeError:
    # torchvision's wheel is a CUDA build: beside a CPU torch its compiled ops do not load, and its import then
    # fails on the fake kernels it registers for them unconditionally. Their schemas are enough for this check.
    shim = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        shim.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
        del sys.modules[name]
    import torchvision  # noqa: F401

sys.path.insert(0, "benchmarks")
from official_model_bench import CONFIGS, official_builder  # noqa: E402  (what the device's stage runs)

model = official_builder(Path(".official"), None)(CONFIGS["t"])  # the official pure-PyTorch DCNv3 core
import mmcv  # noqa: E402
import mmseg  # noqa: E402

with torch.inference_mode():
    logits = model.decode_head(model.extract_feat(torch.randn(1, 3, 64, 128)))
assert tuple(logits.shape[2:]) == (16, 32), logits.shape  # (its Cityscapes configs keep the 150 ADE20K classes)
print(f"check: mmcv {mmcv.__version__}, mmseg {mmseg.__version__}: the official UperNet InternImage-T config builds "
      f"and runs ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, logits {tuple(logits.shape)})")
PY
