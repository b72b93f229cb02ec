"""tests/data/make_official_fixtures.py, the script that makes the official fixtures, stays usable.

Running the official code needs an InternImage checkout and mmsegmentation 0.x / mmcv 1.x, which the project
does not install: the test that audits the committed fixtures with it runs only where INTERNIMAGE_DIR names a
checkout and those libraries import.
"""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from support.fixtures import DATA, FIXTURES, load_fixture
from torch import nn

SCRIPT = DATA / "make_official_fixtures.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_official_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # importable without mmseg, mmcv or a checkout
    return module


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_help_names_the_checkout_and_the_check():
    result = run_script("--help")
    assert result.returncode == 0, result.stderr
    assert "--internimage DIR" in result.stdout and "--check" in result.stdout and "--out DIR" in result.stdout


def test_a_folder_that_is_no_checkout_is_one_clear_line(tmp_path):
    result = run_script("--internimage", str(tmp_path))
    assert result.returncode == 2
    assert "is not an InternImage checkout: missing segmentation/mmseg_custom/models/backbones/intern_image.py" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert run_script().returncode == 2  # --internimage is required


@pytest.mark.skipif(importlib.util.find_spec("mmcv") is not None, reason="mmcv is installed here")
def test_without_mmcv_the_script_says_what_to_install(tmp_path, script):
    checkout = tmp_path / "InternImage"
    for spec in script.SPECS:  # the files the script looks for, empty: it stops before reading them
        (checkout / "segmentation/configs" / spec.config).parent.mkdir(parents=True, exist_ok=True)
        (checkout / "segmentation/configs" / spec.config).touch()
    for path in (
        "mmseg_custom/models/backbones/intern_image.py",
        "ops_dcnv3/functions/dcnv3_func.py",
        "ops_dcnv3/modules/dcnv3.py",
    ):
        (checkout / "segmentation" / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / "segmentation" / path).touch()
    result = run_script("--internimage", str(checkout), "--check")
    assert result.returncode == 2
    assert "error: mmcv 1.x is needed (pip install 'mmcv<2' or 'mmcv-full<2')" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_specs_describe_the_committed_fixtures(script):
    assert [spec.stem for spec in script.SPECS] == list(FIXTURES)
    for spec in script.SPECS:
        fixture = load_fixture(spec.stem)
        assert (fixture["name"], fixture["seed"]) == (spec.name, spec.seed)
        assert tuple(fixture["input"].shape) == (1, 3, *spec.input_hw)
        shrunk = dict(fixture["config"], backbone=dict(fixture["config"]["backbone"]))
        shrunk["decode_head"] = dict(fixture["config"]["decode_head"])
        if "auxiliary_head" in shrunk:
            shrunk["auxiliary_head"] = dict(fixture["config"]["auxiliary_head"])
        spec.shrink(shrunk)
        assert shrunk == fixture["config"]  # the committed configs carry exactly these overrides


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.norm = nn.LayerNorm(8)
        self.offset = nn.Linear(8, 18)  # zero-initialised in the official DCNv3
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.gamma = nn.Parameter(torch.ones(8))


def test_randomize_draws_every_parameter_and_batchnorm_statistic_from_the_seed(script):
    before = {key: value.clone() for key, value in TinyNet().state_dict().items()}
    net = TinyNet()
    script.randomize(net, seed=5)
    after = net.state_dict()
    for key, value in after.items():
        if key.endswith("num_batches_tracked"):
            continue
        assert not torch.equal(value, before[key]), f"{key} was not randomised"
    assert after["offset.weight"].abs().min() > 0  # sampling offsets far from zero
    assert 0.75 <= after["bn.running_var"].min() and after["bn.running_var"].max() <= 1.25
    again = TinyNet()
    script.randomize(again, seed=5)
    assert all(torch.equal(again.state_dict()[key], value) for key, value in after.items())
    other = TinyNet()
    script.randomize(other, seed=6)
    assert not torch.equal(other.state_dict()["conv.weight"], after["conv.weight"])


def test_the_meta_holds_a_numpy_scalar_as_mmseg_checkpoints_do(script, tmp_path):
    meta = script.checkpoint_meta(script.SPECS[0], "0.30.0", ["road"] * 19, [[128, 64, 128]] * 19)
    assert set(meta) == set(load_fixture(FIXTURES[0])["checkpoint"]["meta"])
    path = tmp_path / "meta.pth"
    torch.save({"meta": meta, "state_dict": {}}, path)
    with pytest.raises(Exception, match="numpy"):
        torch.load(path, weights_only=True)


def official_libraries_missing():
    return [name for name in ("mmcv", "mmseg", "timm") if importlib.util.find_spec(name) is None]


@pytest.mark.skipif(
    not os.environ.get("INTERNIMAGE_DIR") or bool(official_libraries_missing()),
    reason="needs an InternImage checkout in INTERNIMAGE_DIR and mmsegmentation 0.x, mmcv 1.x, timm (not "
    "project dependencies)",
)
def test_check_audits_the_committed_fixtures_against_the_official_code():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--internimage", os.environ["INTERNIMAGE_DIR"], "--check"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for stem in FIXTURES:
        assert f"{stem}: ok official output of the committed checkpoint" in result.stdout
