"""The package as a colcon workspace installs it: ``colcon test`` runs this folder (CMakeLists.txt) against
``install/cityscapes_seg_ros`` with no pip-installed copy beside it (``scripts/colcon_check.sh``, run by .ci/run).
The rest of the suite already ran in the venv; here: the import comes from the install, the messages import, the
compiled ops are built from the installed kernels, and the installed node entry point starts and publishes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PREFIX = os.environ.get("CITYSCAPES_SEG_COLCON_PREFIX")  # set by CMakeLists.txt's test: the install prefix

colcon_only = pytest.mark.skipif(not PREFIX, reason="runs under `colcon test` on a colcon install (colcon_check.sh)")
pytestmark = [pytest.mark.ros, colcon_only]


def installed(*parts: str) -> Path:
    return Path(PREFIX).resolve().joinpath(*parts)


def test_the_package_and_its_messages_come_from_the_install():
    from cityscapes_seg_ros.msg import ClassStat, ClassStatistics
    from rclpy.serialization import deserialize_message, serialize_message

    import cityscapes_seg_ros

    assert Path(cityscapes_seg_ros.__file__).resolve().is_relative_to(installed())
    message = ClassStatistics(
        model="tiny", height=2, width=2, classes=[ClassStat(train_id=13, name="car", pixel_count=1)]
    )
    assert deserialize_message(serialize_message(message), ClassStatistics) == message


def test_the_compiled_ops_are_built_from_the_installed_kernels(tmp_path):
    """In a fresh process with an empty build cache: found under share/, built there, loaded (no fallback)."""
    script = (
        "from cityscapes_seg_ros.ops import compiled\n"
        "print(compiled.kernels_root())\n"
        "for name in ('png_unfilter', 'score_decode_cpu', 'dcnv3_cpu'):\n"
        "    assert compiled.load(name) is not None, (name, compiled.unavailable_reason(name))\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("CITYSCAPES_SEG_COMPILED_OPS", None)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == installed("share", "cityscapes_seg_ros", "kernels")


def test_the_installed_node_starts_and_publishes_labels(tiny_model_files):
    """``ros2 run cityscapes_seg_ros cityscapes_seg_node``: the entry point CMakeLists.txt installs in lib/."""
    import rclpy
    from sensor_msgs.msg import Image
    from support.ros_probe import Probe, bgr_msg, make_context

    config, checkpoint = tiny_model_files
    entry_point = installed("lib", "cityscapes_seg_ros", "cityscapes_seg_node")
    params_file = installed("share", "cityscapes_seg_ros", "config", "cityscapes_seg.yaml")
    parameters = [
        f"model:={config}",
        f"checkpoint:={checkpoint}",
        "inference_size:=[64, 32]",
        "dcnv3_backend:=torch",
        "image_topics:=[/colcon/image_raw]",
    ]
    command = [sys.executable, str(entry_point), "--ros-args", "--params-file", str(params_file)]
    command += [arg for parameter in parameters for arg in ("-p", parameter)]
    node = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    context = make_context()
    probe = Probe(context, "colcon_probe")
    try:
        probe.listen(Image, "/colcon/segmentation/labels")
        images = probe.publisher(Image, "/colcon/image_raw")
        frame = bgr_msg(np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8))

        def labelled() -> bool:
            return bool(probe.messages("/colcon/segmentation/labels"))

        published = probe.wait_for(labelled, timeout=120, publish=lambda: images.publish(frame))
        assert published, node.stderr.read() if node.poll() is not None else "no labels within 120 s"
        labels = probe.messages("/colcon/segmentation/labels")[0]
        assert (labels.height, labels.width, labels.encoding) == (32, 64, "mono8")
    finally:
        probe.close()
        rclpy.try_shutdown(context=context)
        node.terminate()
        node.communicate(timeout=30)
