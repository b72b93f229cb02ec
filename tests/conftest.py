import os
import random
from pathlib import Path

import pytest
import torch
from support.fixtures import load_fixture

# The machines running the tests have 2 cores; keep torch from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# ROS 2 tests: a DDS domain of this test session's own (other sessions' tests share the machine), discovery
# on the loopback interface only. Set before anything initialises rclpy; subprocesses inherit it.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randrange(1, 101)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def needs_cuda(item: pytest.Item) -> bool:
    """A test skipped without a CUDA device: a skipif mark (its own or its parameter's) that names CUDA, or a
    fixture of the CUDA op (``cuda_op``, ``cuda_kernel``), which skips there."""
    marks = item.iter_markers("skipif")
    return any("CUDA" in str(mark.kwargs.get("reason", "")) for mark in marks) or any(
        name.startswith("cuda_") for name in getattr(item, "fixturenames", ())
    )


def pytest_collection_modifyitems(config, items):
    # The `cuda` marker (declared in pyproject.toml): what scripts/gpu_check.sh runs on a lent GPU.
    for item in items:
        if needs_cuda(item):
            item.add_marker(pytest.mark.cuda)


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
