"""pip-installable package; the ROS 2 node's extras come with `pip install .[ros]`."""

import hashlib
import os
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
KERNELS = Path("kernels/dcnv3")
SCORE_DECODE = Path("kernels/score_decode")

# ROS 2 (kilted) wheels from PyPI: a real rclpy with Fast DDS and the message packages the node uses.
ROS_RUNTIME = [
    "ros-rclpy",
    "ros-rmw-fastrtps-cpp",
    "ros-sensor-msgs",
    "ros-std-msgs",
    "ros-diagnostic-msgs",
    "ros-rosgraph-msgs",  # /clock of cityscapes-seg-bag replay
]
ROS_BUILD = ["cmake>=3.16", "ros-ament-package", "catkin-pkg", "empy", "lark"] + [
    f"ros-{name}"
    for name in (
        "ament-cmake ament-cmake-core ament-cmake-export-definitions ament-cmake-export-dependencies "
        "ament-cmake-export-include-directories ament-cmake-export-interfaces ament-cmake-export-libraries "
        "ament-cmake-export-link-flags ament-cmake-export-targets ament-cmake-gen-version-h "
        "ament-cmake-include-directories ament-cmake-libraries ament-cmake-python ament-cmake-ros "
        "ament-cmake-ros-core ament-cmake-target-dependencies ament-cmake-test ament-cmake-vendor-package "
        "ament-cmake-version fastrtps-cmake-module python-cmake-module rosidl-adapter rosidl-cli rosidl-cmake "
        "rosidl-core-generators rosidl-core-runtime rosidl-default-generators rosidl-default-runtime "
        "rosidl-dynamic-typesupport rosidl-dynamic-typesupport-fastrtps rosidl-generator-c rosidl-generator-cpp "
        "rosidl-generator-py rosidl-generator-type-description rosidl-parser rosidl-pycommon rosidl-runtime-c "
        "rosidl-runtime-cpp rosidl-typesupport-c rosidl-typesupport-cpp rosidl-typesupport-fastrtps-c "
        "rosidl-typesupport-fastrtps-cpp rosidl-typesupport-interface rosidl-typesupport-introspection-c "
        "rosidl-typesupport-introspection-cpp"
    ).split()
]



def kernel_source_digest(folder: Path) -> str:
    """Digest of the kernel sources; the same definition as cityscapes_seg_ros.ops.extension.source_digest."""
    h = hashlib.sha1()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".h", ".cpp", ".cu"):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def compiled_extensions() -> tuple[list, dict]:
    """The compiled ops, built at install time when torch is importable (pip --no-build-isolation): the
    DCNv3 CPU op and the score decode op (kernels/score_decode) always, the DCNv3 CUDA op when torch has
    CUDA and a toolkit is found. Without torch at build time, or with CITYSCAPES_SEG_DCNV3_BUILD=0, nothing
    is built here and the ops are JIT-built on first use.
    CITYSCAPES_SEG_DCNV3_BUILD=cpu skips the CUDA op; =cuda forces it (fails without a toolkit)."""
    mode = os.environ.get("CITYSCAPES_SEG_DCNV3_BUILD", "auto").strip().lower()
    if mode in ("0", "off", "no", "false", "none", "skip"):
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        return [], {}
    digest = f'-DCSR_DCNV3_SOURCE_DIGEST="{kernel_source_digest(KERNELS)}"'
    cflags = ["-O3", "-std=c++20", "-fopenmp", digest]
    extensions = [
        cpp_extension.CppExtension(
            "cityscapes_seg_ros._dcnv3_cpu",
            [str(KERNELS / "dcnv3_cpu.cpp")],
            include_dirs=[str(KERNELS.resolve())],
            extra_compile_args=cflags,
            extra_link_args=["-fopenmp"],
        ),
        cpp_extension.CppExtension(
            "cityscapes_seg_ros._score_decode_cpu",
            [str(SCORE_DECODE / "score_decode_cpu.cpp")],
            extra_compile_args=["-O3", "-std=c++20", "-fopenmp", "-fno-trapping-math",
                                f'-DCSR_SOURCE_DIGEST="{kernel_source_digest(SCORE_DECODE)}"'],
            extra_link_args=["-fopenmp"],
        ),
    ]
    has_toolkit = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if mode == "cuda" or (mode != "cpu" and has_toolkit):
        # Jetson Orin (8.7), Ada (8.9), Hopper (9.0) unless the user names the architectures.
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.7;8.9;9.0+PTX")
        extensions.append(
            cpp_extension.CUDAExtension(
                "cityscapes_seg_ros._dcnv3_cuda",
                [str(KERNELS / "dcnv3_cuda.cu"), str(KERNELS / "dcnv3_cuda_bind.cpp")],
                include_dirs=[str(KERNELS.resolve())],
                extra_compile_args={"cxx": ["-O3", "-std=c++20", digest], "nvcc": ["-O3", "-std=c++20"]},
            )
        )
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
    install_requires=[
        # Any torch >= 2.1 works; install the build you want first (CPU: `pip install torch==2.13.0`).
        "torch>=2.1",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
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
        "bag": ["rosbags>=0.10"],
        "test": [
            "pytest>=7",
            "catkin-pkg>=1.0",
            "cityscapesscripts>=2.2",
            "ninja>=1.11",
            # cityscapesscripts' evaluator calls np.in1d, which numpy 2.4 removed.
            "numpy<2.4",
            "rosbags>=0.10",  # the bag tools
            *ROS_RUNTIME,
        ],
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
        # The kernel sources, JIT-built on first use where the install built no op (ops/extension.py).
        ("share/cityscapes_seg_ros/kernels/dcnv3", [str(p) for p in sorted(KERNELS.glob("*.*"))]),
        ("share/cityscapes_seg_ros/kernels/score_decode", [str(p) for p in sorted(SCORE_DECODE.glob("*.*"))]),
    ],
    ext_modules=EXTENSIONS,
    cmdclass=CMDCLASS,
    zip_safe=False,
)
