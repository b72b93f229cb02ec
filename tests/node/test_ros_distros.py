"""The node on every supported distro: Humble's rclpy API (checked by name), Jazzy and Kilted (run by CI).

``tests/data/rclpy_humble_api.json`` lists the public names of rclpy 3.3 (the humble branch of ros2/rclpy),
written by ``scripts/rclpy_api_names.py``. Every rclpy name the package uses must be in it, or be used under
a fallback (an ``except ImportError`` import, or a ``hasattr`` / ``getattr(..., default)`` test).
"""

import ast
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]
HUMBLE = json.loads((ROOT / "tests" / "data" / "rclpy_humble_api.json").read_text())["modules"]
# Classes whose members the package calls on rclpy objects (a node, its entities, parameters).
RCLPY_CLASSES = {
    "Node": "rclpy.node",
    "Publisher": "rclpy.publisher",
    "Subscription": "rclpy.subscription",
    "Timer": "rclpy.timer",
    "Executor": "rclpy.executors",
    "Parameter": "rclpy.parameter",
    "Context": "rclpy.context",
}


def package_files():
    return sorted((ROOT / "cityscapes_seg_ros").rglob("*.py"))


class Guards(ast.NodeVisitor):
    """Collects (node, guarded) for imports from rclpy and attribute reads, with their fallback guards."""

    def __init__(self):
        self.imports, self.attributes = [], []
        self._guarded_imports = 0
        self._guarded_names = []

    def visit_Try(self, node):
        catches = {h.type.id for h in node.handlers if isinstance(h.type, ast.Name)}
        catches |= {
            e.id for h in node.handlers if isinstance(h.type, ast.Tuple) for e in h.type.elts if isinstance(e, ast.Name)
        }
        guarded = bool(catches & {"ImportError", "ModuleNotFoundError", "AttributeError"})
        self._guarded_imports += guarded
        for statement in node.body:
            self.visit(statement)
        self._guarded_imports -= guarded
        for part in node.handlers + node.orelse + node.finalbody:
            self.visit(part)

    def visit_If(self, node):
        names = [
            c.args[1].value
            for c in ast.walk(node.test)
            if isinstance(c, ast.Call)
            and getattr(c.func, "id", "") == "hasattr"
            and len(c.args) == 2
            and isinstance(c.args[1], ast.Constant)
        ]
        self._guarded_names += names
        for statement in node.body:
            self.visit(statement)
        del self._guarded_names[len(self._guarded_names) - len(names) :]
        for statement in node.orelse:
            self.visit(statement)
        self.visit(node.test)

    def visit_ImportFrom(self, node):
        if node.module and node.module.split(".")[0] == "rclpy":
            for alias in node.names:
                self.imports.append((node.module, alias.name, node.lineno, self._guarded_imports > 0))

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name.startswith("rclpy."):
                self.imports.append((alias.name, None, node.lineno, self._guarded_imports > 0))

    def visit_Attribute(self, node):
        self.attributes.append((node.attr, node.lineno, node.attr in self._guarded_names))
        self.generic_visit(node)


def scanned():
    for path in package_files():
        text = path.read_text(encoding="utf-8")
        if "rclpy" not in text:
            continue
        guards = Guards()
        guards.visit(ast.parse(text))
        yield path.relative_to(ROOT), guards


def humble_has(module: str, name=None) -> bool:
    if module not in HUMBLE:
        return False
    return name is None or name in HUMBLE[module]["names"] or f"{module}.{name}" in HUMBLE


def test_the_humble_name_list_is_the_humble_release():
    record = json.loads((ROOT / "tests" / "data" / "rclpy_humble_api.json").read_text())
    assert record["version"].startswith("3.3.")
    assert "add_on_set_parameters_callback" in HUMBLE["rclpy.node"]["classes"]["Node"]
    assert "add_post_set_parameters_callback" not in HUMBLE["rclpy.node"]["classes"]["Node"]
    assert "rclpy.event_handler" not in HUMBLE and "SubscriptionEventCallbacks" in HUMBLE["rclpy.qos_event"]["names"]


def test_every_rclpy_import_exists_on_humble_or_has_a_fallback():
    missing = [
        f"{path}:{line}: from {module} import {name}"
        for path, guards in scanned()
        for module, name, line, guarded in guards.imports
        if not guarded and not humble_has(module, name)
    ]
    assert not missing


def test_every_member_of_rclpy_objects_used_exists_on_humble_or_is_tested_for():
    rclpy = pytest.importorskip("rclpy")
    import importlib

    # Members of today's rclpy classes (the installed distro) that Humble's class does not have.
    newer = {}
    for class_name, module in RCLPY_CLASSES.items():
        members = set(vars(getattr(importlib.import_module(module), class_name)))
        humble_members = set(HUMBLE[module]["classes"].get(class_name, []))
        for member in members - humble_members:
            if not member.startswith("_"):
                newer.setdefault(member, []).append(class_name)
    assert rclpy and "add_post_set_parameters_callback" in newer  # the check can see a difference
    used = [
        f"{path}:{line}: .{attr} ({', '.join(newer[attr])} has it only after Humble)"
        for path, guards in scanned()
        for attr, line, guarded in guards.attributes
        if attr in newer and not guarded
    ]
    assert not used


def test_the_node_applies_runtime_parameters_without_a_post_set_callback(monkeypatch, tiny_t_fixture):
    """Humble's Node has no add_post_set_parameters_callback: the fallback path, on a real rclpy node."""
    rclpy = pytest.importorskip("rclpy")
    pytest.importorskip("cityscapes_seg_ros.msg", reason="messages not built (scripts/build_msgs.sh)")
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from cityscapes_seg_ros import build_segmentor
    from cityscapes_seg_ros.node.node import SegmentationNode
    from cityscapes_seg_ros.node.pipeline import DevicePredictor

    monkeypatch.delattr(Node, "add_post_set_parameters_callback")
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        model = build_segmentor(tiny_t_fixture["config"], None, "cpu")
        node = SegmentationNode(DevicePredictor(model), context=context)
        try:
            assert node.set_parameters([Parameter("overlay_alpha", value=0.25)])[0].successful
            assert node.settings.overlay_alpha == 0.25
            refused = node.set_parameters([Parameter("overlay_alpha", value=3.0)])[0]
            assert not refused.successful and node.settings.overlay_alpha == 0.25
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_the_message_modules_import_without_torch(tmp_path):
    """A monitoring machine echoes segmentation/statistics without PyTorch."""
    pytest.importorskip("cityscapes_seg_ros.msg", reason="messages not built (scripts/build_msgs.sh)")
    import subprocess

    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from cityscapes_seg_ros.msg import ClassStatistics, ClassStat\n"
        "from cityscapes_seg_ros.ros_contract import image_codec, topics\n"
        "print(ClassStatistics.__name__, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ClassStatistics", "False"]
