#!/usr/bin/env bash
# Build a `vision_msgs` interface package holding LabelInfo and VisionClass into .venv/, for the tests of the
# node's segmentation/label_info topic where no ROS 2 distro is installed (PyPI has no vision_msgs wheels).
#   bash scripts/build_vision_msgs.sh      # after scripts/setup.sh --test (uses the ros-build extra's wheels)
# On a distro, install the real package instead (ros-<distro>-vision-msgs; LabelInfo since vision_msgs 4.1).
# The two definitions below carry the fields of vision_msgs 4.1 (type, name and order), so the message types
# and their hashes match what a vehicle's vision_msgs publishes. Skipped when vision_msgs.msg.LabelInfo imports.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(cd "${VENV:-.venv}" && pwd)  # VENV=.venv-jazzy: setup.sh --distro jazzy
PY="$VENV/bin/python"
if "$PY" -c 'from vision_msgs.msg import LabelInfo' 2>/dev/null; then
  echo "vision_msgs already importable: nothing to build"
  exit 0
fi

SRC=${BUILD_ROOT:-build}/vision_msgs_src
BUILD=${BUILD_ROOT:-build}/vision_msgs
rm -rf "$SRC" "$BUILD" && mkdir -p "$SRC/msg"

cat > "$SRC/msg/VisionClass.msg" <<'EOF'
# One class of a vision pipeline: its integer id and its name.
uint16 class_id
string class_name
EOF

cat > "$SRC/msg/LabelInfo.msg" <<'EOF'
# The class map of a vision pipeline (class id -> name), published once on a transient-local topic.
std_msgs/Header header
vision_msgs/VisionClass[] class_map
float32 threshold
EOF

cat > "$SRC/package.xml" <<'EOF'
<?xml version="1.0"?>
<package format="3">
  <name>vision_msgs</name>
  <version>4.1.1</version>
  <description>LabelInfo and VisionClass only, built for cityscapes_seg_ros's tests</description>
  <maintainer email="maintainers@cityscapes-seg-ros.dev">cityscapes_seg_ros maintainers</maintainer>
  <license>Apache License 2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
EOF

cat > "$SRC/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(vision_msgs NONE)
enable_language(C CXX)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/VisionClass.msg" "msg/LabelInfo.msg" DEPENDENCIES std_msgs)
# The PyPI wheels export the include dir of the machine that built them; drop include dirs that do not exist.
get_property(_imported_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_target IN LISTS _imported_targets)
  get_target_property(_includes ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  if(_includes)
    set(_existing "")
    foreach(_dir IN LISTS _includes)
      if(EXISTS "${_dir}" OR _dir MATCHES "^\\$<")
        list(APPEND _existing "${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_existing}")
  endif()
endforeach()
ament_export_dependencies(rosidl_default_runtime)
ament_package()
EOF

export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
PY_INCLUDE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
# Python modules into the venv's site-packages, libraries into .venv/lib (on the loader path through the
# ros-wheels-bootstrapper), share/vision_msgs for ament's index.
"$VENV/bin/cmake" -S "$SRC" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_BUILD_TYPE=Release \
  -DPython3_EXECUTABLE="$PY" -DPython3_INCLUDE_DIR="$PY_INCLUDE" -DBUILD_TESTING=OFF \
  > "$BUILD.log" 2>&1 || { cat "$BUILD.log"; exit 1; }
make -C "$BUILD" -j"$(nproc)" >> "$BUILD.log" 2>&1 && make -C "$BUILD" install >> "$BUILD.log" 2>&1 \
  || { tail -50 "$BUILD.log"; exit 1; }
"$PY" -c 'from vision_msgs.msg import LabelInfo; print("vision_msgs built:", LabelInfo.__name__)'
