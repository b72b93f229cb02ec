"""The public face of the package, pinned: what users import, the console scripts, the node's parameters and topics.

A layout change (modules moved between subpackages) must leave every name here where it was. Each list below is
written out on purpose: a name that disappears, or one that appears without being added here, fails this test.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import cityscapes_seg_ros

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]

PACKAGE_EXPORTS = [
    "CheckpointError",
    "EncoderDecoder",
    "MODEL_REGISTRY",
    "Prediction",
    "Predictor",
    "SegmentorConfig",
    "build_segmentor",
    "count_parameters",
    "get_model_config",
    "list_models",
    "preprocess",
    "read_state_dict",
    "resolve_checkpoint",
    "resolve_device",
    "scores_to_train_ids",
]
# Names the docs import from modules (docs/models.md, docs/evaluation.md, docs/ops.md).
DOCUMENTED_IMPORTS = {
    "cityscapes_seg_ros.segmenter": ["ModelOptions", "build_predictor"],
    "cityscapes_seg_ros.evaluation": ["Accumulator"],
    "cityscapes_seg_ros.labels": ["TRAIN_CLASS_NAMES", "train_ids_to_label_ids"],
    "cityscapes_seg_ros.visualize": ["colorize", "overlay"],
    "cityscapes_seg_ros.ops": ["dcnv3", "dcnv3_op", "dcnv3_core_torch", "decode_scores", "label_histogram"],
    "cityscapes_seg_ros.ops.score_decode": ["decode_logits"],
}
CONSOLE_SCRIPTS = {
    "cityscapes-seg": "cityscapes_seg_ros.cli.main:main",
    "cityscapes-seg-eval": "cityscapes_seg_ros.cli.eval_main:main",
    "cityscapes_seg_node": "cityscapes_seg_ros.node.__main__:main",
    "cityscapes-seg-bag": "cityscapes_seg_ros.cli.bag_main:main",
}
NODE_NAME = "cityscapes_seg_node"
NODE_PARAMETERS = [
    "model",
    "checkpoint",
    "hub_offline",
    "device",
    "precision",
    "dcnv3_backend",
    "inference_size",
    "resize",
    "mode",
    "tta",
    "max_batch_size",
    "cuda_graphs",
    "image_topics",
    "input_transport",
    "input_reliability",
    "output_reliability",
    "outputs",
    "skip_unsubscribed",
    "overlay_alpha",
    "confidence_encoding",
    "statistics_rate",
    "classes",
    "max_pixels",
    "diagnostics_rate",
    "log_throttle_s",
    "frame_timeout_s",
    "health_window_s",
    "jpeg_quality",
]
CAMERA = "/cam/front/image_raw"
NODE_TOPICS = {
    "labels": "/cam/front/segmentation/labels",
    "color": "/cam/front/segmentation/color",
    "overlay": "/cam/front/segmentation/overlay",
    "confidence": "/cam/front/segmentation/confidence",
    "statistics": "/cam/front/segmentation/statistics",
    "camera_info": "/cam/front/segmentation/camera_info",
}


def test_the_package_exports_exactly_its_public_names_and_each_resolves():
    assert sorted(cityscapes_seg_ros.__all__) == sorted(PACKAGE_EXPORTS)
    for name in PACKAGE_EXPORTS:
        assert getattr(cityscapes_seg_ros, name) is not None, name


@pytest.mark.parametrize("module", sorted(DOCUMENTED_IMPORTS))
def test_names_the_docs_import_are_where_the_docs_say(module):
    imported = importlib.import_module(module)
    for name in DOCUMENTED_IMPORTS[module]:
        assert hasattr(imported, name), f"{module}.{name}"


def _console_scripts() -> dict:
    """The console_scripts of setup.py, read from its source (setup.py is not importable: it runs setup())."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    lines = ast.literal_eval(value)
                    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)
    raise AssertionError("setup.py declares no console_scripts")


def test_console_scripts_are_unchanged_and_resolve():
    scripts = _console_scripts()
    assert scripts == CONSOLE_SCRIPTS
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_node_parameters_are_unchanged():
    from cityscapes_seg_ros.node.params import SPECS

    assert list(SPECS) == NODE_PARAMETERS


def test_node_topics_are_unchanged():
    from cityscapes_seg_ros.ros_contract import topics

    assert {kind: topics.output_topic(CAMERA, kind) for kind in topics.OUTPUT_KINDS} == NODE_TOPICS
    assert topics.label_info_topic(CAMERA) == "/cam/front/segmentation/label_info"
    assert topics.camera_info_topic(CAMERA) == "/cam/front/camera_info"
    assert topics.input_topic(CAMERA, "compressed") == "/cam/front/image_raw/compressed"


def test_node_name_is_unchanged():
    pytest.importorskip("rclpy")
    from cityscapes_seg_ros.node.node import NODE_NAME as declared

    assert declared == NODE_NAME
