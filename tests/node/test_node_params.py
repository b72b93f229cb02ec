"""The node's parameters: one table, the shipped params file in step with it, the checks; launch file."""

import py_compile
from pathlib import Path

import pytest
import yaml

from cityscapes_seg_ros.node.params import PARAMETERS, SPECS, NodeSettings, ParameterError, problem

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]


def test_the_params_file_lists_every_parameter_with_its_default():
    shipped = yaml.safe_load((ROOT / "config" / "cityscapes_seg.yaml").read_text())
    values = shipped["/**/cityscapes_seg_node"]["ros__parameters"]
    assert values == {spec.name: spec.default for spec in PARAMETERS}
    text = (ROOT / "config" / "cityscapes_seg.yaml").read_text()
    for spec in PARAMETERS:  # each one commented on the line above it
        lines = text.splitlines()
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{spec.name}:"))
        assert lines[index - 1].strip().startswith("#"), spec.name
    NodeSettings.from_values(values)


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("overlay_alpha", 1.5, "outside [0.0, 1.0]"),
        ("precision", "fp8", "'fp8' is not one of fp32, tf32, fp16, bf16"),
        ("device", "tpu", "unknown device 'tpu'"),
        ("image_topics", [], "at least one image topic"),
        ("image_topics", ["/cam/a b"], "invalid topic name"),
        ("inference_size", [2048], "expected [long edge, short edge]"),
        ("classes", ["road", "dragon"], "unknown class(es) ['dragon']"),
        ("max_pixels", "many", "expected int values"),
        ("model", "missing.yaml", "model config file missing.yaml does not exist"),
    ],
)
def test_bad_values_are_named(name, value, words):
    assert words in problem(name, value)


def test_good_values_pass_and_settings_collect_every_problem():
    assert problem("device", "cuda:1") is None and problem("statistics_rate", 2) is None
    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update(mode="tiles", overlay_alpha=-1.0)
    with pytest.raises(
        ParameterError, match=r"mode: 'tiles' is not one of whole, slide; overlay_alpha: -1.0 is outside"
    ):
        NodeSettings.from_values(values)
    assert NodeSettings.from_values(
        {**values, "mode": "slide", "overlay_alpha": 0.3, "classes": ["car", "road"]}
    ).class_subset == (0, 13)


def test_model_and_input_parameters_are_read_only_at_runtime():
    runtime = {name for name, spec in SPECS.items() if spec.runtime}
    assert {"model", "checkpoint", "device", "image_topics", "input_transport"}.isdisjoint(runtime)
    assert {"overlay_alpha", "outputs", "classes", "tta", "statistics_rate"} <= runtime


def test_launch_file_compiles():
    py_compile.compile(str(ROOT / "launch" / "segmentation.launch.py"), doraise=True)
