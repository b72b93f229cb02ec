#!/usr/bin/env bash
# Build the package's ROS 2 messages (msg/*.msg) into .venv/ with cmake and the rosidl wheels from PyPI,
# for machines without a ROS 2 distro (on a distro, `colcon build` does this from CMakeLists.txt).
#   bash scripts/build_msgs.sh      # after scripts/setup.sh; setup.sh --ros / --test calls it
#   VENV=.venv-jazzy DISTRO=jazzy bash scripts/build_msgs.sh   # into another venv, with that distro's wheels
# Installs: the C/C++ type support libraries into .venv/lib (on the loader path through the
# ros-wheels-bootstrapper that the ROS wheels install), the generated Python modules into
# .venv/lib/cityscapes_seg_ros_msgs/cityscapes_seg_ros/, which cityscapes_seg_ros/__init__.py adds to the
# package's __path__ (installing them into site-packages would shadow the editable package).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(cd "${VENV:-.venv}" && pwd)
DISTRO=${DISTRO:-kilted}
case "$DISTRO" in
  kilted) extras="ros,ros-build" ;;
  *) extras="ros-$DISTRO,ros-build-$DISTRO" ;;  # only that distro's ros-<distro>-* names (setup.py)
esac
PY="$VENV/bin/python"
PY_TAG=$("$PY" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')

# Editable install without compiling the ops: setup.sh did that (or chose not to) already.
CITYSCAPES_SEG_COMPILED_OPS=off "$VENV/bin/pip" install --quiet --no-build-isolation -e ".[$extras]"

BUILD=build/$DISTRO/msgs
rm -rf "$BUILD" && mkdir -p "$(dirname "$BUILD")"
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
# The wheels' exported CMake targets name the include dir of the machine that built them
# (/opt/python/cp311-cp311/include/python3.11); point it at this interpreter's headers instead.
PY_INCLUDE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
"$VENV/bin/cmake" -S . -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_BUILD_TYPE=Release \
  -DPython3_EXECUTABLE="$PY" -DPython3_INCLUDE_DIR="$PY_INCLUDE" -DBUILD_TESTING=OFF \
  -DPYTHON_INSTALL_DIR="lib/cityscapes_seg_ros_msgs" -DINSTALL_PYTHON_PACKAGE=OFF -DINSTALL_SHARE_FILES=OFF \
  > "$BUILD.log" 2>&1 || { cat "$BUILD.log"; exit 1; }
make -C "$BUILD" -j"$(nproc)" >> "$BUILD.log" 2>&1 && make -C "$BUILD" install >> "$BUILD.log" 2>&1 \
  || { tail -50 "$BUILD.log"; exit 1; }
"$PY" -c 'from cityscapes_seg_ros.msg import ClassStatistics; print("messages built:", ClassStatistics.__name__)'
