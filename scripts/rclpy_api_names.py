#!/usr/bin/env python3
"""Write the public names of an rclpy release (modules, their top-level names, class members) as JSON.

No Humble wheels exist on PyPI, so the node's Humble support is checked against this list, made from the
humble branch of ros2/rclpy (``tests/node/test_ros_distros.py``). Regenerate it with a clone of the repository:

    git clone https://github.com/ros2/rclpy && python scripts/rclpy_api_names.py --git rclpy --ref humble \\
        --out tests/data/rclpy_humble_api.json

or from a checked-out source tree: ``--source rclpy/rclpy`` (the folder that holds the ``rclpy`` package).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

PACKAGE_DIR = "rclpy/rclpy"  # inside the ros2/rclpy repository


def sources_from_git(git_dir: Path, ref: str) -> Iterator[Tuple[str, str]]:
    """(path inside the rclpy package, source) of every Python file of ``ref``."""
    listing = subprocess.run(
        ["git", "-C", str(git_dir), "ls-tree", "-r", "--name-only", ref, PACKAGE_DIR + "/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for path in listing:
        if path.endswith(".py"):
            show = subprocess.run(["git", "-C", str(git_dir), "show", f"{ref}:{path}"], check=True, capture_output=True)
            yield path[len("rclpy/") :], show.stdout.decode("utf-8")


def sources_from_folder(folder: Path) -> Iterator[Tuple[str, str]]:
    for path in sorted((folder / "rclpy").rglob("*.py")):
        yield str(path.relative_to(folder)), path.read_text(encoding="utf-8")


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def assigned_names(node) -> List[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def public_names(tree: ast.Module) -> Tuple[List[str], Dict[str, List[str]]]:
    """Top-level names (definitions, assignments, imports) and the members of each top-level class."""
    names, classes = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            names.update(assigned_names(node))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.If, ast.Try)):  # names defined under a version or import guard
            inner, _ = public_names(ast.Module(body=list(ast.iter_child_nodes(node)), type_ignores=[]))
            names.update(inner)
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    members.add(item.name)
                elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                    members.update(assigned_names(item))
            classes[node.name] = sorted(members)
    return sorted(names), classes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--git", type=Path, help="a clone of github.com/ros2/rclpy (read with git show)")
    where.add_argument("--source", type=Path, help="a folder holding the rclpy package (rclpy/ inside)")
    parser.add_argument("--ref", default="humble", help="branch or tag with --git (default humble)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    sources = sources_from_git(args.git, args.ref) if args.git else sources_from_folder(args.source)
    modules = {}
    for path, text in sources:
        names, classes = public_names(ast.parse(text))
        modules[module_name(path)] = {"names": names, "classes": classes}
    if not modules:
        print("no rclpy sources found", file=sys.stderr)
        return 2
    version = "unknown"
    if args.git:
        package_xml = subprocess.run(
            ["git", "-C", str(args.git), "show", f"{args.ref}:rclpy/package.xml"], capture_output=True, text=True
        ).stdout
        if "<version>" in package_xml:
            version = package_xml.split("<version>")[1].split("<")[0]
    record = {
        "source": f"ros2/rclpy {args.ref}" if args.git else str(args.source),
        "version": version,
        "modules": dict(sorted(modules.items())),
    }
    args.out.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{len(modules)} modules of rclpy {version} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
