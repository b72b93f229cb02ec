#!/usr/bin/env bash
# Make .venv/ in the repo root with the package installed (editable) and its console scripts in .venv/bin/.
#   bash scripts/setup.sh          # the package
#   bash scripts/setup.sh --ros    # the package, the ROS 2 wheels (rclpy, Fast DDS) and its messages built
#   bash scripts/setup.sh --test   # the package, the ROS 2 part and what the tests need
# PyTorch: an already installed torch is kept; otherwise torch==2.13.0 (the CPU build on these machines).
# For a CUDA machine, install your CUDA build of torch into .venv first, then run this script.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
extras=""
with_ros=0
case "${1:-}" in
  --test) extras="[test]"; with_ros=1 ;;
  --ros) extras="[ros]"; with_ros=1 ;;
esac

[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
fi
# Without build isolation, so that setup.py sees torch and compiles the DCNv3 op (kernels/dcnv3) now
# rather than on first use.
.venv/bin/pip install --quiet "setuptools>=64" wheel ninja
.venv/bin/pip install --quiet --no-build-isolation -e ".${extras}"
# The node's ClassStatistics messages (msg/*.msg), built with cmake and the rosidl wheels.
[[ $with_ros == 1 ]] && bash scripts/build_msgs.sh
# vision_msgs' LabelInfo (no wheel on PyPI) for the tests of the node's segmentation/label_info topic.
[[ $extras == "[test]" ]] && bash scripts/build_vision_msgs.sh
echo "ready: $(.venv/bin/python -c 'import torch, cityscapes_seg_ros as c; print(f"cityscapes_seg_ros {c.__version__}, torch {torch.__version__}")')"
