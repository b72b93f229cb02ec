"""pip-installable package; the ROS 2 node's extras come with `pip install .[ros]`."""

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent
KERNELS = Path("kernels")

# ROS 2 wheels from PyPI: a real rclpy with Fast DDS and the message packages the node uses. `ros-<name>` is the
# newest distro (Kilted); `ros-jazzy-<name>` pins the Jazzy release. A venv holds one distro's names only: an
# unversioned `ros-<name>` next to Jazzy's pulls Kilted wheels back in (scripts/setup.sh --distro jazzy).
ROS_RUNTIME_NAMES = (
    "rclpy",
    "rmw-fastrtps-cpp",
    "sensor-msgs",
    "std-msgs",
    "diagnostic-msgs",
    "rosgraph-msgs",  # /clock of cityscapes-seg-bag replay
)
ROS_BUILD_NAMES = (
    "ament-cmake ament-cmake-core ament-cmake-export-definitions ament-cmake-export-dependencies "
    "ament-cmake-export-include-directories ament-cmake-export-interfaces ament-cmake-export-libraries "
    "ament-cmake-export-link-flags ament-cmake-export-targets ament-cmake-gen-version-h "
    "ament-cmake-include-directories ament-cmake-libraries ament-cmake-python ament-cmake-ros "
    "ament-cmake-target-dependencies ament-cmake-test ament-cmake-vendor-package "
    "ament-cmake-version fastrtps-cmake-module python-cmake-module rosidl-adapter rosidl-cli rosidl-cmake "
    "rosidl-core-generators rosidl-core-runtime rosidl-default-generators rosidl-default-runtime "
    "rosidl-dynamic-typesupport rosidl-dynamic-typesupport-fastrtps rosidl-generator-c rosidl-generator-cpp "
    "rosidl-generator-py rosidl-generator-type-description rosidl-parser rosidl-pycommon rosidl-runtime-c "
    "rosidl-runtime-cpp rosidl-typesupport-c rosidl-typesupport-cpp rosidl-typesupport-fastrtps-c "
    "rosidl-typesupport-fastrtps-cpp rosidl-typesupport-interface rosidl-typesupport-introspection-c "
    "rosidl-typesupport-introspection-cpp"
).split()
# What ament_cmake_ros needs beyond the common list: Kilted moved it into ament_cmake_ros_core (no Jazzy wheel);
# Jazzy's ament_cmake_ros 0.12 finds the gmock, gtest and pytest modules itself.
ROS_BUILD_DISTRO_NAMES = {
    "kilted": ["ament-cmake-ros-core"],
    "jazzy": ["ament-cmake-gmock", "ament-cmake-gtest", "ament-cmake-pytest"],
}
BUILD_TOOLS = ["cmake>=3.16", "catkin-pkg", "empy", "lark"]


def ros_wheels(names, distro: str) -> list[str]:
    """PyPI names of ROS 2 packages: `ros-<name>` for Kilted (the unversioned wheels), `ros-<distro>-<name>`."""
    prefix = "ros-" if distro == "kilted" else f"ros-{distro}-"
    return [prefix + name for name in names]


ROS_RUNTIME = ros_wheels(ROS_RUNTIME_NAMES, "kilted")
ROS_BUILD = BUILD_TOOLS + ros_wheels(["ament-package", *ROS_BUILD_NAMES, *ROS_BUILD_DISTRO_NAMES["kilted"]], "kilted")
ROS_JAZZY_RUNTIME = ros_wheels(ROS_RUNTIME_NAMES, "jazzy")
ROS_JAZZY_BUILD = BUILD_TOOLS + ros_wheels(
    ["ament-package", *ROS_BUILD_NAMES, *ROS_BUILD_DISTRO_NAMES["jazzy"]], "jazzy"
)
# cityscapes-seg export (docs/export.md): the dynamo ONNX exporter (onnxscript), the checker (onnx), ONNX Runtime and
# its Python custom ops (onnxruntime-extensions, for the --dcnv3 op check). Pinned to the versions the tests ran with:
# the exporter's output and the custom-op API change between releases.
EXPORT_TOOLS = [
    "onnx==1.23.2",
    "onnxscript==0.7.2",
    "onnxruntime==1.32.0",
    "onnxruntime-extensions==0.15.2",
]
TEST_TOOLS = [
    *EXPORT_TOOLS,
    "pytest>=7",
    "catkin-pkg>=1.0",
    "cityscapesscripts>=2.2",
    "ninja>=1.11",
    # cityscapesscripts' evaluator calls np.in1d, which numpy 2.4 removed.
    "numpy<2.4",
    "rosbags>=0.11,<0.12",  # the bag tools (pinned: see the bag extra)
    "ruff==0.17.5",  # formatter and linter, run by tests/package/test_code_style.py (pinned: rules change)
]


def op_records():
    """cityscapes_seg_ros/ops/op_records.py, read by path: the ops' records, digests and switch, shared with
    the loader (the package itself cannot be imported here)."""
    path = HERE / "cityscapes_seg_ros" / "ops" / "op_records.py"
    spec = importlib.util.spec_from_file_location("_cityscapes_seg_op_records", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def extension_args(record, compile_args) -> dict:
    folder = KERNELS / record.folder
    return {
        "sources": [str(folder / source) for source in record.sources],
        "include_dirs": [str((HERE / folder).resolve())],
        "extra_compile_args": compile_args,
        "extra_link_args": list(record.ldflags),
    }


def compiled_extensions() -> tuple[list, dict]:
    """The compiled ops of op_records.RECORDS, built at install time with the flags and digest the loader
    (cityscapes_seg_ros/ops/compiled.py) expects. The library ops (no torch) always; the torch ops when torch
    is importable (pip --no-build-isolation), the CUDA op only where torch has CUDA and a toolkit is found.
    What is not built here is built on first use. CITYSCAPES_SEG_COMPILED_OPS=off builds nothing, =cpu skips
    the CUDA op, =cuda forces it (fails without a toolkit)."""
    records = op_records()
    switch = records.read_switch()
    for warning in switch.warnings:
        print(f"setup.py: {warning}", file=sys.stderr)
    if switch.mode == "off":
        return [], {}

    extensions = []
    torch_records = []
    for record in records.RECORDS:
        define = records.digest_define(record.digest(HERE / KERNELS))
        if record.kind == "library":
            args = extension_args(record, [*record.cflags, define])
            extensions.append(Extension(record.module_name, language="c++", **args))
        else:
            torch_records.append((record, define))
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        return extensions, {}
    has_toolkit = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    for record, define in torch_records:
        if record.device_type == "cpu":
            args = extension_args(record, [*record.cflags, define])
            extensions.append(cpp_extension.CppExtension(record.module_name, **args))
        elif switch.mode == "cuda" or (switch.mode != "cpu" and has_toolkit):
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", records.cuda_arch_list())
            args = extension_args(record, {"cxx": [*record.cflags, define], "nvcc": [*record.cuda_flags, define]})
            extensions.append(cpp_extension.CUDAExtension(record.module_name, **args))
    return extensions, {"build_ext": cpp_extension.BuildExtension}


EXTENSIONS, CMDCLASS = compiled_extensions()

setup(
    name="cityscapes_seg_ros",
    version="0.1.0",
    description="InternImage (UperNet / SegFormer) Cityscapes semantic segmentation for ROS 2 and offline use",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["cityscapes_seg_ros", "cityscapes_seg_ros.*"]),
    package_data={"cityscapes_seg_ros": ["data/demo/*.png"]},  # the frames of `cityscapes-seg demo`
    install_requires=[
        # Any torch >= 2.1 works; install the build you want first (CPU: `pip install torch==2.13.0`).
        "torch>=2.1",
        "numpy>=1.24",
        # OpenCV 4, as under mmcv 1.x: the official pipeline's resize and imnormalize are OpenCV 4's arithmetic
        # (OpenCV 5 rounds the normalisation differently, by up to 2.4e-7).
        "opencv-python-headless>=4.8,<5",
        "huggingface_hub>=0.23",
        "tqdm>=4.60",
        "PyYAML>=6.0",
        "Pillow>=9.0",  # reads label PNGs as the official evaluator does (palette PNGs give indices)
        "deflate>=0.9",  # libdeflate: inflates label PNGs for scoring several times faster than zlib
        "matplotlib>=3.5",  # evaluation plots
    ],
    extras_require={
        "ros": ROS_RUNTIME,
        # What scripts/build_msgs.sh needs to build msg/*.msg with cmake where no ROS 2 distro is installed.
        "ros-build": ROS_BUILD,
        # cityscapes-seg-bag: bag files without ROS (rosbags); replay and live evaluation add the ros extra.
        "bag": ["rosbags>=0.11,<0.12"],  # bag/writing.py adds chunk CRCs inside rosbags 0.11's MCAP writer
        "export": EXPORT_TOOLS,
        "test": [*TEST_TOOLS, *ROS_RUNTIME],
        # The same on ROS 2 Jazzy wheels (scripts/setup.sh --test --distro jazzy): test tools, runtime and build.
        "ros-jazzy": ROS_JAZZY_RUNTIME,
        "ros-build-jazzy": ROS_JAZZY_BUILD,
        "test-jazzy": [*TEST_TOOLS, *ROS_JAZZY_RUNTIME],
    },
    entry_points={
        "console_scripts": [
            "cityscapes-seg = cityscapes_seg_ros.cli.main:main",
            "cityscapes-seg-eval = cityscapes_seg_ros.cli.eval_main:main",
            "cityscapes_seg_node = cityscapes_seg_ros.node.__main__:main",
            "cityscapes-seg-bag = cityscapes_seg_ros.cli.bag_main:main",
        ],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/cityscapes_seg_ros"]),
        ("share/cityscapes_seg_ros", ["package.xml"]),
        # The parameter file and rviz config (`cityscapes-seg demo` and the launch file read them) and the launch
        # file, where colcon's CMakeLists.txt installs them too: `<prefix>/share/cityscapes_seg_ros/`.
        ("share/cityscapes_seg_ros/config", sorted(str(p) for p in Path("config").glob("*.*"))),
        ("share/cityscapes_seg_ros/launch", sorted(str(p) for p in Path("launch").glob("*.py"))),
        # The kernel sources, built on first use where the install built no op, or an older one (ops/compiled.py).
        *(
            (f"share/cityscapes_seg_ros/kernels/{folder.name}", [str(p) for p in sorted(folder.glob("*.*"))])
            for folder in sorted(KERNELS.iterdir())
            if folder.is_dir()
        ),
    ],
    ext_modules=EXTENSIONS,
    cmdclass=CMDCLASS,
    zip_safe=False,
)
