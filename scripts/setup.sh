#!/usr/bin/env bash
# Make .venv/ in the repo root with the package installed (editable) and its console scripts in .venv/bin/.
#   bash scripts/setup.sh          # the package
#   bash scripts/setup.sh --ros    # the package, the ROS 2 wheels (rclpy, Fast DDS) and its messages built
#   bash scripts/setup.sh --test   # the package, the ROS 2 part and what the tests need
#   bash scripts/setup.sh --test --distro jazzy   # the same on ROS 2 Jazzy wheels, in .venv-jazzy/ (CI runs the
#                                                 # ROS tests there too); the default distro is Kilted, in .venv/
# PyTorch: an already installed torch is kept; otherwise torch==2.13.0 (the CPU build on these machines).
# For a CUDA machine, install your CUDA build of torch into .venv first, then run this script.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
mode=""
distro=kilted
while [[ $# -gt 0 ]]; do
  case "$1" in
    --test | --ros) mode=$1 ;;
    --distro) distro=${2:?--distro needs kilted or jazzy}; shift ;;
    *) echo "setup.sh: unknown argument $1 (--ros, --test, --distro kilted|jazzy)" >&2; exit 2 ;;
  esac
  shift
done
case "$distro" in
  # Kilted: the unversioned ros-* wheels. Jazzy: only ros-jazzy-* names (an unversioned one pulls Kilted back).
  kilted) venv=.venv; suffix="" ;;
  jazzy) venv=.venv-jazzy; suffix="-jazzy" ;;
  *) echo "setup.sh: --distro is kilted or jazzy, not $distro" >&2; exit 2 ;;
esac
extras=""
with_ros=0
case "$mode" in
  --test) extras="[test${suffix}]"; with_ros=1 ;;
  --ros) extras="[ros${suffix}]"; with_ros=1 ;;
esac
if [[ $distro != kilted && $with_ros == 0 ]]; then
  echo "setup.sh: --distro goes with --ros or --test" >&2
  exit 2
fi

[[ -x $venv/bin/python ]] || "$PYTHON" -m venv "$venv"
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "$venv/bin/pip" install --quiet "torch==${TORCH_VERSION:-2.13.0}"
fi
"$venv/bin/pip" install --quiet "setuptools>=64" wheel ninja
if [[ $venv == .venv ]]; then
  # Without build isolation, so that setup.py sees torch and compiles the DCNv3 op (kernels/dcnv3) now
  # rather than on first use.
  "$venv/bin/pip" install --quiet --no-build-isolation -e ".${extras}"
else
  # The compiled ops of an editable install land in the source tree, shared with .venv/ (same Python and
  # torch build): compile none here, so this venv neither rebuilds nor replaces them; missing ones build on first use.
  CITYSCAPES_SEG_COMPILED_OPS=off "$venv/bin/pip" install --quiet --no-build-isolation -e ".${extras}"
fi
# The node's ClassStatistics messages (msg/*.msg), built with cmake and the rosidl wheels.
[[ $with_ros == 1 ]] && VENV=$venv DISTRO=$distro bash scripts/build_msgs.sh
# vision_msgs' LabelInfo (no wheel on PyPI) for the tests of the node's segmentation/label_info topic.
[[ $mode == --test ]] && VENV=$venv BUILD_ROOT=build/$distro bash scripts/build_vision_msgs.sh
echo "ready: $("$venv/bin/python" -c 'import torch, cityscapes_seg_ros as c; print(f"cityscapes_seg_ros {c.__version__}, torch {torch.__version__}")')"
