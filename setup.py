"""pip-installable package; the ROS 2 node's extras come with `pip install .[ros]`."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

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
        # The DCNv3 kernel sources, JIT-built on first use (cityscapes_seg_ros/ops/extension.py).
        ("share/cityscapes_seg_ros/kernels/dcnv3", [str(p) for p in sorted(Path("kernels/dcnv3").glob("*.*"))]),
    ],
    zip_safe=False,
)
