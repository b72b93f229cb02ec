"""The one way from options to a predictor: the CLIs' shared arguments, the node's parameters, the defaults."""

import argparse
import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cityscapes_seg_ros.cli import bag_main, eval_main
from cityscapes_seg_ros.cli import main as seg_main
from cityscapes_seg_ros.node.params import SPECS, NodeSettings
from cityscapes_seg_ros.segmenter import options as model_options
from cityscapes_seg_ros.segmenter.options import ModelOptions, build_predictor, given_options

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

PACKAGE = Path(model_options.__file__).parents[1]  # the whole package, not only segmenter/
T = "upernet_internimage_t_512x1024_160k_cityscapes"
MODEL_ARGS = [
    "--model",
    T,
    "--checkpoint",
    "/some/file.pth",
    "--revision",
    "v1",
    "--hub-offline",
    "--device",
    "CPU",
    "--precision",
    "bf16",
    "--mode",
    "slide",
    "--tta",
    "ms-flip",
    "--img-scale",
    "1024x512",
    "--dcnv3-backend",
    "torch",
]
EXPECTED = ModelOptions(
    model=T,
    checkpoint="/some/file.pth",
    revision="v1",
    hub_offline=True,
    device="cpu",
    precision="bf16",
    mode="slide",
    tta="ms-flip",
    img_scale=(1024, 512),
    dcnv3_backend="torch",
)


def parsed(parser: argparse.ArgumentParser, argv):
    return ModelOptions.from_args(parser.parse_args(argv))


def test_the_three_command_lines_read_the_model_options_alike():
    assert parsed(seg_main.build_parser(), ["predict", "x.png", "--out", "o"] + MODEL_ARGS) == EXPECTED
    assert parsed(eval_main.build_parser(), ["run", "--cityscapes-root", "r", "--out", "o"] + MODEL_ARGS) == EXPECTED
    assert parsed(bag_main.build_parser(), ["evaluate", "bag", "--offline"] + MODEL_ARGS) == EXPECTED


def test_defaults_are_the_released_checkpoint_everywhere():
    defaults = [
        parsed(seg_main.build_parser(), ["predict", "x.png", "--out", "o"]),
        parsed(eval_main.build_parser(), ["run", "--cityscapes-root", "r", "--out", "o"]),
        parsed(bag_main.build_parser(), ["evaluate", "bag", "--offline"]),
    ]
    assert all(options == ModelOptions() for options in defaults)
    assert ModelOptions().checkpoint == "hub" and SPECS["checkpoint"].default == "hub"
    assert SPECS["model"].default == ModelOptions().model


def test_node_parameters_choices_come_from_the_same_definitions():
    assert SPECS["precision"].choices == model_options.PRECISIONS
    assert SPECS["mode"].choices == model_options.MODES
    assert SPECS["tta"].choices == model_options.TTA_CHOICES
    assert SPECS["dcnv3_backend"].choices == model_options.DCNV3_BACKENDS
    values = {name: spec.default for name, spec in SPECS.items()}
    values.update(checkpoint="none", device="cpu", precision="bf16", inference_size=[1024, 512], hub_offline=True)
    options = NodeSettings.from_values(values).model_options()
    assert options == ModelOptions(
        checkpoint="none", device="cpu", precision="bf16", img_scale=(1024, 512), hub_offline=True
    )
    # And back: the node parameters the bag evaluator passes for these options parse to the same values.
    for parameter in options.node_parameters():
        name, value = parameter.split(":=")
        assert name in SPECS


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model", "no_such_model"], "unknown model 'no_such_model'"),
        (["--model", "missing.yaml"], "model config file missing.yaml does not exist"),
        (["--device", "gpu"], "unknown device 'gpu'"),
        (["--img-scale", "1024"], "expected LONGxSHORT"),
        (["--precision", "fp8"], "invalid choice: 'fp8'"),
    ],
)
def test_bad_model_options_are_refused_when_parsed(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        seg_main.build_parser().parse_args(["predict", "x.png", "--out", "o"] + argv)
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_only_the_options_the_user_set_go_to_the_node():
    args = bag_main.build_parser().parse_args(["evaluate", "bag", "--precision", "fp16", "--img-scale", "64x32"])
    options = ModelOptions.from_args(args)
    assert given_options(args) == ["precision", "img_scale"]
    assert options.node_parameters(given_options(args)) == ["precision:=fp16", "inference_size:=[64, 32]"]


def test_random_weights_only_when_asked_and_said_so(tiny_model_files, caplog):
    config, _ = tiny_model_files
    options = ModelOptions(model=str(config), checkpoint="none", device="cpu")
    assert options.random_weights and "RANDOM WEIGHTS" in options.describe()["checkpoint"]
    with caplog.at_level(logging.WARNING, logger="cityscapes_seg_ros"):
        predictor = build_predictor(options)
    assert predictor.device.type == "cpu"
    assert "RANDOM WEIGHTS" in caplog.text
    assert not ModelOptions(model=str(config), device="cpu").random_weights


def test_random_weights_are_the_same_model_every_run_and_leave_the_random_state_alone(tiny_model_files):
    """Two runs (or two torchrun ranks) of --checkpoint none once scored two different random models."""
    import torch

    from cityscapes_seg_ros.segmenter.options import load_segmentor

    config, _ = tiny_model_files
    options = ModelOptions(model=str(config), checkpoint="none", device="cpu", dcnv3_backend="torch")
    torch.manual_seed(1)
    first = load_segmentor(options).state_dict()
    after = torch.rand(3)
    torch.manual_seed(1)
    torch.rand(7)  # another rank, another history of random draws
    second = load_segmentor(options).state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(3), after)  # the build drew nothing from the caller's generator
    code = (
        "from cityscapes_seg_ros.segmenter.options import ModelOptions, load_segmentor; "
        f"m = load_segmentor(ModelOptions(model=r'{config}', checkpoint='none', device='cpu', dcnv3_backend='torch')); "
        "print(repr(float(sum(p.detach().double().sum() for p in m.parameters()))))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)  # another process
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == repr(
        float(sum(p.detach().double().sum() for p in load_segmentor(options).parameters()))
    )


def test_unset_values_are_null_in_reports_not_the_string_none():
    from cityscapes_seg_ros.evaluation.run import RunSettings

    assert ModelOptions(device="cpu").describe()["revision"] is None
    assert ModelOptions(device="cpu", revision="v1").describe()["revision"] == "v1"
    settings = RunSettings(split="val", **ModelOptions(device="cpu").identity())
    assert settings.describe()["revision"] is None and settings.describe()["img_scale"] == "[2048, 1024]"


def test_identity_records_files_as_absolute_paths(tiny_model_files, monkeypatch):
    config, checkpoint = tiny_model_files
    monkeypatch.chdir(config.parent)
    identity = ModelOptions(model=config.name, checkpoint=checkpoint.name, device="cpu").identity()
    assert identity["model"] == str(config.resolve()) and identity["checkpoint"] == str(checkpoint.resolve())
    assert "device" not in identity  # where it runs does not change the predictions


def package_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        yield name.removesuffix(".__init__"), path


def imported_modules(name: str, path: Path):
    """Package modules that ``name`` imports (absolute or relative, at any depth of the file)."""
    package_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package_parts[: len(package_parts) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module
            for alias in node.names:
                yield f"{module}.{alias.name}"
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_nothing_imports_from_the_command_lines():
    offenders = [
        f"{name} imports {imported}"
        for name, path in package_modules()
        if not name.startswith("cityscapes_seg_ros.cli")
        for imported in imported_modules(name, path)
        if imported.startswith("cityscapes_seg_ros.cli")
    ]
    assert not offenders


def test_no_import_cycles_between_modules():
    modules = dict(package_modules())
    graph = {
        name: {m for m in imported_modules(name, path) if m in modules and m != name and not name.startswith(m + ".")}
        for name, path in modules.items()
    }
    # Package faces (__init__) re-export; a cycle through one is not a cycle of modules.
    faces = {name for name, path in modules.items() if path.name == "__init__.py"}
    cycles = []

    def visit(node, trail):
        for nxt in graph[node] - faces:
            if nxt in trail:
                cycles.append(" -> ".join(trail[trail.index(nxt) :] + [nxt]))
            elif len(trail) < 12:
                visit(nxt, trail + [nxt])

    for start in graph:
        if start not in faces:
            visit(start, [start])
    assert not cycles


def test_evaluator_command_line_imports_no_torch():
    code = (
        "import sys; from cityscapes_seg_ros.cli import eval_main; "
        "eval_main.build_parser().parse_args(['score', '--gt-root', 'g', '--pred-dir', 'p', '--json', 'j']); "
        "print('torch' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
