#!/usr/bin/env bash
# A ROS user's path, without a ROS 2 distro: this checkout in a colcon workspace (src/cityscapes_seg_ros, a link),
# `colcon build` and `colcon test` (CMakeLists.txt: tests/colcon/ against install/) with the Kilted wheels from
# PyPI, in a venv where the package is NOT pip-installed (a pip copy would shadow what the install lacks).
#   bash scripts/colcon_check.sh     # .ci/run runs it; venv .venv-colcon/, workspace build/colcon_ws/
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-colcon}
WS=${WS:-build/colcon_ws}

[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
VENV=$(cd "$VENV" && pwd)
PY=$VENV/bin/python
"$PY" -c "import torch" 2>/dev/null || "$VENV/bin/pip" install --quiet "torch==${TORCH_VERSION:-2.13.0}"
"$VENV/bin/pip" install --quiet "setuptools>=64" wheel
# The package's requirements with the ros and ros-build extras, then the package itself removed again: colcon
# installs it. colcon, ament_cmake_pytest and pytest for `colcon test`.
CITYSCAPES_SEG_COMPILED_OPS=off "$VENV/bin/pip" install --quiet --no-build-isolation ".[ros,ros-build]" \
  colcon-common-extensions ros-ament-cmake-pytest "pytest>=7" ninja
"$VENV/bin/pip" uninstall --quiet --yes cityscapes_seg_ros
(cd / && ! "$PY" -c "import cityscapes_seg_ros" 2>/dev/null) || { echo "cityscapes_seg_ros still importable" >&2; exit 1; }

rm -rf "$WS" && mkdir -p "$WS/src"
ln -s "$REPO" "$WS/src/cityscapes_seg_ros"
cd "$WS"
export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
PY_INCLUDE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
colcon build --event-handlers console_cohesion- --cmake-args -DBUILD_TESTING=ON -DPython3_EXECUTABLE="$PY" \
  -DPython3_INCLUDE_DIR="$PY_INCLUDE"
set +u  # the setup scripts read unset variables
source install/local_setup.bash
set -u
colcon test --event-handlers console_cohesion+ --return-code-on-test-failure
colcon test-result --verbose
