"""Checkpoints are untrusted: weights only, loaded strictly, every problem named clearly."""

import os
import pickle

import pytest
import torch

from cityscapes_seg_ros import CheckpointError, build_segmentor
from cityscapes_seg_ros.models import HubLocation
from cityscapes_seg_ros.segmenter.checkpoint import parse_hub_source, read_state_dict, resolve_checkpoint


def save_state_dict(tmp_path, state_dict, name="bad.pth"):
    path = tmp_path / name
    torch.save({"meta": {}, "state_dict": state_dict}, path)
    return path


def official_state_dict(fixture):
    return dict(fixture["checkpoint"]["state_dict"])


def test_meta_with_numpy_scalar_is_read_with_weights_only(tiny_t_checkpoint, tiny_t_fixture):
    state_dict = read_state_dict(tiny_t_checkpoint)
    assert state_dict.keys() == tiny_t_fixture["checkpoint"]["state_dict"].keys()


def test_bare_state_dict_is_accepted(tmp_path, tiny_t_fixture):
    path = tmp_path / "bare.pth"
    torch.save(official_state_dict(tiny_t_fixture), path)
    build_segmentor(tiny_t_fixture["config"], checkpoint=path, device="cpu")


def test_missing_keys_are_named(tmp_path, tiny_t_fixture):
    state_dict = official_state_dict(tiny_t_fixture)
    del state_dict["backbone.levels.2.blocks.1.dcn.offset.weight"]
    del state_dict["auxiliary_head.conv_seg.bias"]
    with pytest.raises(CheckpointError) as info:
        build_segmentor(tiny_t_fixture["config"], checkpoint=save_state_dict(tmp_path, state_dict), device="cpu")
    text = str(info.value)
    assert "missing keys (2)" in text
    assert "backbone.levels.2.blocks.1.dcn.offset.weight" in text and "auxiliary_head.conv_seg.bias" in text


def test_unexpected_and_misshaped_keys_are_named_together(tmp_path, tiny_t_fixture):
    state_dict = official_state_dict(tiny_t_fixture)
    state_dict["decode_head.extra.weight"] = torch.zeros(3)
    state_dict["decode_head.conv_seg.weight"] = torch.zeros(19, 32, 1, 1)
    with pytest.raises(CheckpointError) as info:
        build_segmentor(tiny_t_fixture["config"], checkpoint=save_state_dict(tmp_path, state_dict), device="cpu")
    text = str(info.value)
    assert "unexpected keys (1): decode_head.extra.weight" in text
    assert "decode_head.conv_seg.weight (checkpoint [19, 32, 1, 1], model [150, 32, 1, 1])" in text


def test_checkpoint_of_another_model_lists_the_differences(tmp_path):
    t_like = {"backbone.levels.0.norm.0.weight": torch.zeros(64)}
    with pytest.raises(CheckpointError) as info:
        build_segmentor(
            "upernet_internimage_s_512x1024_160k_cityscapes", checkpoint=save_state_dict(tmp_path, t_like), device="cpu"
        )
    text = str(info.value)
    assert "unexpected keys (1): backbone.levels.0.norm.0.weight" in text
    assert "missing keys (" in text and "backbone.patch_embed.conv1.weight" in text


class Payload:
    """A pickled object that would run code on load if unpickled without restrictions."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"meta": {"x": Payload()}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(path)
    assert "this must never run" not in capsys.readouterr().out


class GetCwd:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize("payload, named", [(Payload(), "print"), (GetCwd(), "getcwd")], ids=["print", "getcwd"])
def test_the_refusal_names_the_object_and_never_suggests_the_unsafe_load(tmp_path, payload, named):
    """torch's own message advises weights_only=False or allowlisting the object: both would run the payload."""
    path = tmp_path / "evil.pth"
    torch.save({"meta": {"x": payload}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="refused") as refused:
        read_state_dict(path)
    message = str(refused.value)
    assert named in message
    assert "False" not in message and "safe_globals" not in message and "allowlist" not in message, message


def test_plain_pickle_that_is_not_weights_is_refused(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"state_dict": Payload()}))
    with pytest.raises(CheckpointError):
        read_state_dict(path)


def test_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="could not be read"):
        read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_segmentor("upernet_internimage_t_512x1024_160k_cityscapes", checkpoint=tmp_path / "nope.pth")


def test_checkpoint_without_state_dict(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"meta": {}, "optimizer": {}}, path)
    with pytest.raises(CheckpointError, match="no state_dict"):
        read_state_dict(path)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="upernet_internimage_t_512x1024_160k_cityscapes"):
        build_segmentor("upernet_internimage_q")


# --- Hugging Face hub -------------------------------------------------------------------------


def fill_hf_cache(cache_dir, repo_id, filename, payload_path, commit="a" * 40, ref="main"):
    """Lay a file out as huggingface_hub's cache does (refs/<ref> -> snapshots/<commit>/<file>)."""
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / ref).write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(payload_path.read_bytes())


def test_hub_checkpoint_found_in_cache_offline(tmp_path, tiny_t_checkpoint, tiny_t_fixture, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hf"
    fill_hf_cache(cache, "someone/tiny", "tiny_t.pth", tiny_t_checkpoint)
    model = build_segmentor(
        tiny_t_fixture["config"], checkpoint="hf://someone/tiny/tiny_t.pth", device="cpu", cache_dir=cache, offline=True
    )
    assert torch.equal(
        model.state_dict()["decode_head.conv_seg.bias"],
        tiny_t_fixture["checkpoint"]["state_dict"]["decode_head.conv_seg.bias"],
    )


def test_hub_default_location_and_revision_in_cache(tmp_path, tiny_t_checkpoint):
    cache = tmp_path / "hf"
    name = "upernet_internimage_t_512x1024_160k_cityscapes"
    fill_hf_cache(cache, "OpenGVLab/InternImage", f"{name}.pth", tiny_t_checkpoint, commit="b" * 40, ref="v1")
    location = HubLocation("OpenGVLab/InternImage", f"{name}.pth")
    path = resolve_checkpoint("hub", location, revision="v1", cache_dir=cache, offline=True)
    assert path.read_bytes() == tiny_t_checkpoint.read_bytes()


def test_hub_offline_and_not_cached_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache") as info:
        build_segmentor(
            "upernet_internimage_t_512x1024_160k_cityscapes", checkpoint="hub", cache_dir=tmp_path, offline=True
        )
    assert "upernet_internimage_t_512x1024_160k_cityscapes.pth" in str(info.value)


def test_hub_source_parsing():
    assert parse_hub_source("hf://a/b/c/d.pth@v2") == (HubLocation("a/b", "c/d.pth"), "v2")
    with pytest.raises(CheckpointError, match="expected hf://"):
        parse_hub_source("hf://only-owner")
