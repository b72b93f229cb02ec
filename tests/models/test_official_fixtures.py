"""Our models reproduce the official InternImage logits from official checkpoints, loaded strictly."""

import pytest
import torch
from support.fixtures import FIXTURES, load_fixture

from cityscapes_seg_ros import build_segmentor


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.mark.parametrize("name", FIXTURES)
def test_logits_match_official_fp32(name, tmp_path):
    fixture = load_fixture(name)
    path = tmp_path / "checkpoint.pth"
    torch.save(fixture["checkpoint"], path)  # exactly a released file's layout, numpy scalar in meta
    model = build_segmentor(fixture["config"], checkpoint=path, device="cpu")
    with torch.inference_mode():
        logits = model(fixture["input"])
    assert logits.shape == fixture["logits"].shape  # 150 channels at the input size
    assert relative_error(logits, fixture["logits"]) <= 1e-5


@pytest.mark.parametrize("name", FIXTURES)
def test_pure_torch_core_forced_gives_the_same_logits(name, tmp_path):
    fixture = load_fixture(name)
    path = tmp_path / "checkpoint.pth"
    torch.save(fixture["checkpoint"], path)
    model = build_segmentor(fixture["config"], checkpoint=path, device="cpu", dcnv3_backend="torch")
    with torch.inference_mode():
        logits = model(fixture["input"])
    assert relative_error(logits, fixture["logits"]) <= 1e-5


def test_batch_of_two_gives_each_image_its_own_logits(tiny_t_fixture, tiny_t_checkpoint):
    model = build_segmentor(tiny_t_fixture["config"], checkpoint=tiny_t_checkpoint, device="cpu")
    x = tiny_t_fixture["input"]
    other = torch.randn_like(x)
    with torch.inference_mode():
        both = model(torch.cat([x, other]))
        alone = model(other)
    assert relative_error(both[:1], tiny_t_fixture["logits"]) <= 1e-5
    assert relative_error(both[1:], alone) <= 1e-5
