import os
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
FIXTURES = ("official_tiny_upernet_t_like", "official_tiny_upernet_l_like", "official_tiny_segformer_l_like")

# The machines running the tests have 2 cores; keep torch from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))


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
