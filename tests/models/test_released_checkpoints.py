"""Every released checkpoint's keys and shapes load strictly into the nine registered models."""

import numpy as np
import pytest
import torch
from support.fixtures import FIXTURES, load_fixture
from support.released_keys import PUBLISHED_PARAMS_M, RELEASED, released_shapes

from cityscapes_seg_ros import MODEL_REGISTRY, build_segmentor, count_parameters, list_models
from cityscapes_seg_ros.models import EncoderDecoder


def spec_for_fixture(config: dict) -> dict:
    bb, head = config["backbone"], config["decode_head"]
    aux = config.get("auxiliary_head")
    return released_shapes(
        bb["channels"],
        bb["depths"],
        bb["groups"],
        bb["post_norm"],
        "upernet" if head["type"] == "UPerHead" else "segformer",
        head["channels"],
        aux["channels"] if aux else None,
        head["num_classes"],
        head["in_channels"],
    )


@pytest.mark.parametrize("name", FIXTURES)
def test_key_spec_matches_the_official_state_dicts(name):
    fixture = load_fixture(name)
    official = {k: tuple(v.shape) for k, v in fixture["checkpoint"]["state_dict"].items()}
    assert spec_for_fixture(fixture["config"]) == official


def test_registry_holds_exactly_the_nine_official_names():
    assert sorted(list_models()) == sorted(RELEASED)
    for name, cfg in MODEL_REGISTRY.items():
        assert cfg.pretrained.repo_id == "OpenGVLab/InternImage"
        assert cfg.pretrained.filename == f"{name}.pth"


def meta_model(name: str) -> EncoderDecoder:
    with torch.device("meta"):
        return EncoderDecoder(MODEL_REGISTRY[name])


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_model_state_dict_has_every_released_key_and_shape(name):
    ours = {k: tuple(v.shape) for k, v in meta_model(name).state_dict().items()}
    assert ours == released_shapes(*RELEASED[name])


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_parameter_count_matches_the_official_model(name):
    assert count_parameters(meta_model(name)) / 1e6 == pytest.approx(PUBLISHED_PARAMS_M[name], abs=0.006)


def write_released_like_checkpoint(path, name: str) -> dict:
    """An mmseg-format file with every released key and shape; values are cheap stride-0 tensors."""
    gen = torch.Generator().manual_seed(0)
    state_dict = {}
    for key, shape in released_shapes(*RELEASED[name]).items():
        if key.endswith("num_batches_tracked"):
            state_dict[key] = torch.tensor(160000)
        else:
            state_dict[key] = torch.rand(1, generator=gen).add_(0.5).expand(shape)
    meta = {"CLASSES": ("road",) * 19, "iter": 160000, "hook_msgs": {"best_score": np.float64(0.83)}}
    torch.save({"meta": meta, "state_dict": state_dict}, path)
    return state_dict


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_layout_checkpoint_loads_strictly(name, tmp_path):
    path = tmp_path / f"{name}.pth"
    written = write_released_like_checkpoint(path, name)
    model = build_segmentor(name, checkpoint=path, device="cpu")
    loaded = model.state_dict()
    for key in ("backbone.levels.3.blocks.0.dcn.offset.weight", "decode_head.conv_seg.bias"):
        assert torch.equal(loaded[key], written[key])
    del model, loaded


def test_full_size_t_model_runs_with_a_full_random_checkpoint(tmp_path):
    name = "upernet_internimage_t_512x1024_160k_cityscapes"
    reference = build_segmentor(name, device="cpu")  # random init
    path = tmp_path / "t.pth"
    torch.save({"meta": {}, "state_dict": reference.state_dict()}, path)
    loaded = build_segmentor(name, checkpoint=path, device="cpu")
    x = torch.randn(1, 3, 64, 128)
    with torch.inference_mode():
        out_ref, out = reference(x), loaded(x)
    assert out.shape == (1, 150, 64, 128)
    assert torch.equal(out, out_ref)
