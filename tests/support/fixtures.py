"""The official fixtures in tests/data/: outputs of the official InternImage code on tiny models."""

from pathlib import Path

import torch

from support import TESTS

DATA: Path = TESTS / "data"
FIXTURES = ("official_tiny_upernet_t_like", "official_tiny_upernet_l_like", "official_tiny_segformer_l_like")


def load_fixture(name: str) -> dict:
    # Our own fixture files (outputs of the official code), not untrusted input.
    return torch.load(DATA / f"{name}.pt", weights_only=False)
