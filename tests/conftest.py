import os
import random
import re
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
FIXTURES = ("official_tiny_upernet_t_like", "official_tiny_upernet_l_like", "official_tiny_segformer_l_like")

# The machines running the tests have 2 cores; keep torch from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# ROS 2 tests: a DDS domain of this test session's own (other sessions' tests share the machine), discovery
# on the loopback interface only. Set before anything initialises rclpy; subprocesses inherit it.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randrange(1, 101)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

# The `ros` marker: tests of modules that use rclpy, ROS messages or the node. CI runs them a second time on the
# ROS 2 Jazzy wheels (`.venv-jazzy/bin/python -m pytest -m ros tests`, .ci/run). Found from each module's source,
# so a new ROS test module is marked without a list to keep up.
ROS_SOURCE = re.compile(r"\brclpy\b|\b\w+_msgs\.(?:msg|srv)\b|\bcityscapes_seg_ros\.(?:msg|node)\b|\bros_probe\b")


def pytest_configure(config):
    config.addinivalue_line("markers", "ros: uses rclpy, ROS 2 messages or the node (run on every tested distro)")
    config.addinivalue_line("markers", "cuda: needs a CUDA device (what scripts/gpu_check.sh runs on a lent GPU)")


def needs_cuda(item: pytest.Item) -> bool:
    """A test skipped without a CUDA device: a skipif mark (its own or its parameter's) that names CUDA, or a
    fixture of the CUDA op (``cuda_op``, ``cuda_kernel``), which skips there."""
    marks = item.iter_markers("skipif")
    return any("CUDA" in str(mark.kwargs.get("reason", "")) for mark in marks) or any(
        name.startswith("cuda_") for name in getattr(item, "fixturenames", ())
    )


def pytest_collection_modifyitems(config, items):
    is_ros_module = {}
    for item in items:
        if needs_cuda(item):
            item.add_marker(pytest.mark.cuda)
        path = item.path
        if path not in is_ros_module:
            is_ros_module[path] = bool(ROS_SOURCE.search(path.read_text(encoding="utf-8")))
        if is_ros_module[path]:
            item.add_marker(pytest.mark.ros)


def load_fixture(name: str) -> dict:
    # Our own fixture files (outputs of the official code), not untrusted input.
    return torch.load(DATA / f"{name}.pt", weights_only=False)


@pytest.fixture(scope="session")
def tiny_t_fixture() -> dict:
    return load_fixture("official_tiny_upernet_t_like")


@pytest.fixture
def tiny_t_checkpoint(tmp_path, tiny_t_fixture) -> Path:
    """The fixture's official mmseg checkpoint as a .pth file (meta with a numpy scalar included)."""
    path = tmp_path / "tiny_t.pth"
    torch.save(tiny_t_fixture["checkpoint"], path)
    return path


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory, tiny_t_fixture):
    """The tiny official fixture as files a user passes: an mmseg config (YAML) and a checkpoint (.pth)."""
    import json

    import yaml

    folder = tmp_path_factory.mktemp("tiny_model")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump({"model": json.loads(json.dumps(tiny_t_fixture["config"]))}))
    checkpoint = folder / "tiny.pth"
    torch.save(tiny_t_fixture["checkpoint"], checkpoint)
    return config, checkpoint
