"""pip-installable package; the ROS 2 node's extras come with `pip install .[ros]`."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

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
        "ros": [
            "ros-rclpy",
            "ros-rmw-fastrtps-cpp",
            "ros-sensor-msgs",
            "ros-std-msgs",
            "ros-diagnostic-msgs",
            "ros-rosgraph-msgs",  # /clock of cityscapes-seg-bag replay
        ],
        # cityscapes-seg-bag: bag files without ROS (rosbags); replay and live evaluation add the ros extra.
        "bag": ["rosbags>=0.10"],
        "test": [
            "pytest>=7",
            "catkin-pkg>=1.0",
            "cityscapesscripts>=2.2",
            "ninja>=1.11",
            # cityscapesscripts' evaluator calls np.in1d, which numpy 2.4 removed.
            "numpy<2.4",
            # the bag tools and their ROS 2 tests (replay and live evaluation across processes)
            "rosbags>=0.10",
            "ros-rclpy",
            "ros-rmw-fastrtps-cpp",
            "ros-sensor-msgs",
            "ros-std-msgs",
            "ros-rosgraph-msgs",
        ],
    },
    entry_points={
        "console_scripts": [
            "cityscapes-seg = cityscapes_seg_ros.cli.main:main",
            "cityscapes-seg-eval = cityscapes_seg_ros.cli.eval_main:main",
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
