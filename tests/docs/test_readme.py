"""The README and docs/*.md name only what exists: their Python imports work, their module paths and function names
are real. (tests/docs/test_docs.py runs their commands and examples.)"""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(
    path.read_text(encoding="utf-8") for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
)
PACKAGE = ROOT / "cityscapes_seg_ros"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", DOCS, flags=re.S)


def inline_spans():
    text = re.sub(r"```.*?```", "", DOCS, flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def defined_names():
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                names.add(node.name)
    return names


def resolve(dotted: str):
    """Import the longest module prefix of ``dotted`` and walk the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(dotted)


@pytest.mark.parametrize("block", python_blocks())
def test_python_examples_import_what_exists(block):
    # A block marked "# needs: ..." (tests/docs/test_docs.py) may import what only that need provides (launch_ros);
    # what it imports from this package must still exist.
    marked = block.lstrip().startswith("# needs:")
    for node in ast.parse(block).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if marked and not all(m.startswith("cityscapes_seg_ros") for m in modules):
                continue
            exec(compile(ast.Module([node], []), "docs", "exec"), {})  # noqa: S102 - our own docs


def test_module_paths_in_the_text_exist():
    paths = {span for span in inline_spans() if re.fullmatch(r"cityscapes_seg_ros(\.\w+)+", span)}
    assert paths, "the docs name no module path: the pattern is broken"
    missing = []
    for dotted in sorted(paths):
        try:
            resolve(dotted)
        except (ImportError, AttributeError):
            missing.append(dotted)
    assert not missing


def test_functions_named_in_the_text_exist():
    calls = {m.group(1).split(".")[-1] for span in inline_spans() if (m := re.match(r"([A-Za-z_][\w.]*)\(", span))}
    assert calls, "the docs name no function: the pattern is broken"
    builtins = {"dict", "torch.load", "load", "array"}  # array: the stdlib array.array in docs/benchmarks.md
    assert sorted(calls - defined_names() - builtins) == []
