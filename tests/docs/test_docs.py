"""Every command in README.md and docs/*.md is run by this test, or marked as needing what CI does not have.

The commands are the lines of the fenced ```bash, ```sh and ```console blocks (``$ `` prompts in console blocks;
a trailing ``\\`` continues a line). Every command is checked first, whether it runs or not:

- the package's command lines (``.venv/bin/cityscapes-seg``, ``-eval``, ``-bag``, ``python -m cityscapes_seg_ros.cli.*``,
  ``torchrun ... -m ...``) are parsed by their own argparse parsers (subcommands, options, choices, model names);
- the node (``cityscapes_seg_node``, ``python -m cityscapes_seg_ros.node``): its own flags, the ``--params-file``
  must exist, each ``-p name:=value`` must pass the node's parameter checks (``node/params.py``);
- ``ros2 launch cityscapes_seg_ros segmentation.launch.py``: every ``name:=value`` is a declared launch argument
  and passes the launch file's own checks;
- ``bash scripts/X.sh`` and ``python benchmarks/X.py``: the file exists and every ``--option`` shown is in it.

Then a command is **run** (in a scratch folder of its own holding links to the repository's top-level entries, with a
time limit, ``.venv/bin/X`` taken as this interpreter's package), unless it is marked. Cityscapes is stood in for
(STOOD_IN): a command that needs nothing else runs on a small synthetic Cityscapes in ``cityscapes/`` (written by
tests/support/synthetic_cityscapes.py), with label-id predictions for it in ``predictions/labelIds/``, and ``val_bag`` made
from it when the command reads that bag rather than writing it. The marking convention (also in
docs/development.md), a comment at the end of the command's line or on the comment lines right above it:

- ``# needs: WHAT[, WHAT]``: checked, not run (unless all of WHAT is stood in for). WHAT is one of NEEDS below.
- ``# run by: FILE``: another test or CI runs it. FILE must exist and hold the command: ``.ci/run`` the whole line,
  any other file the program's name and each ``--option``.

Only the package's command lines can be run here; any other unmarked command (``pip``, ``colcon``, ``bash
scripts/setup.sh`` ...) fails the test, as does an unmarked command that fails. Cheap forms (CHEAP_FORMS):
``doctor`` runs with ``--no-benchmark`` (its speed estimate builds the T model and counts its FLOPs: about a minute on a
2-core runner).

``python`` blocks are executed in a scratch folder holding ``frame.png``, with the hub replaced by a stand-in: the
registry entry of upernet_internimage_t_512x1024_160k_cityscapes is the tiny official fixture (same layer types,
a fraction of the size) and "downloading" it gives the fixture's checkpoint.

Links: every relative link and image in the docs points at a file that exists, and every ``#anchor`` at a heading.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import itertools
import os
import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = ("bash", "sh", "console")
NEEDS = {
    "gpu": "a CUDA GPU",
    "hub": "the released weights from the Hugging Face hub",
    "cityscapes": "the Cityscapes data set (or a bag made from it)",
    "ros-distro": "a ROS 2 distro install (colcon, ros2)",
    "install": "installs packages (network, minutes)",
    "official": "the official InternImage code",
    "camera": "a live camera",
    "minutes": "runs too long for this test",
}
STOOD_IN = {"cityscapes"}  # needs this test provides (see the module docstring)
STAND_IN_BAG = "val_bag"
CLI_MODULES = {
    "cityscapes-seg": "cityscapes_seg_ros.cli.main",
    "cityscapes-seg-eval": "cityscapes_seg_ros.cli.eval_main",
    "cityscapes-seg-bag": "cityscapes_seg_ros.cli.bag_main",
}
NODE_MODULE = "cityscapes_seg_ros.node"
NODE_PROGRAM = "cityscapes_seg_node"
LAUNCH_FILE = ROOT / "launch" / "segmentation.launch.py"
# (module, subcommand) -> options added to run it within the test's time (see the module docstring).
CHEAP_FORMS = {("cityscapes_seg_ros.cli.main", "doctor"): ["--no-benchmark"]}
# Exit statuses that are a command's answer rather than its failure: doctor says 1 where the node cannot run.
ACCEPTED_STATUS = {("cityscapes_seg_ros.cli.main", "doctor"): (0, 1)}
RUN_TIMEOUT_SEC = 120
T_MODEL = "upernet_internimage_t_512x1024_160k_cityscapes"


# ---------------------------------------------------------------------------------------- reading the docs


@dataclass(frozen=True)
class DocCommand:
    """One command of a shell block: continuation lines joined, its comment and marks taken apart."""

    source: str  # docs/node.md:57
    text: str
    needs: Tuple[str, ...]
    run_by: Optional[str]


def split_comment(line: str) -> Tuple[str, str]:
    """(code, comment) of a shell line: the comment starts at a ``#`` after whitespace, outside quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def marks(comments: List[str]) -> Tuple[Tuple[str, ...], Optional[str]]:
    """The ``needs:`` words and the ``run by:`` file named in these comments."""
    needs: List[str] = []
    run_by = None
    for comment in comments:
        for match in re.finditer(r"needs:\s*([\w-]+(?:\s*,\s*[\w-]+)*)", comment):
            needs += [word.strip() for word in match.group(1).split(",")]
        found = re.search(r"run by:\s*(\S+)", comment)
        if found:
            run_by = found.group(1)
    return tuple(needs), run_by


def shell_blocks(path: Path) -> List[Tuple[int, str, List[str]]]:
    """(line number of the first line, language, lines) of every fenced shell block."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[index])
        if opening:
            end = index + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if opening.group(1) in SHELL_LANGUAGES:
                blocks.append((index + 2, opening.group(1), lines[index + 1 : end]))
            index = end
        index += 1
    return blocks


def block_commands(name: str, first_line: int, language: str, lines: List[str]) -> List[DocCommand]:
    commands = []
    comments: List[str] = []
    index = 0
    while index < len(lines):
        line, number = lines[index], first_line + index
        index += 1
        if language == "console":
            if not line.startswith("$ "):
                comments = []  # output
                continue
            line = line[2:]
        code, comment = split_comment(line)
        if not code:
            comments = comments + [comment] if comment else []
            continue
        trailing = [comment]
        while code.endswith("\\") and index < len(lines):
            more_code, more_comment = split_comment(lines[index].lstrip())
            code = code[:-1].rstrip() + " " + more_code
            trailing.append(more_comment)
            index += 1
        needs, run_by = marks(comments + trailing)
        commands.append(DocCommand(f"{name}:{number}", code, needs, run_by))
        comments = []
    return commands


def doc_commands() -> List[DocCommand]:
    commands = []
    for path in DOC_FILES:
        name = path.relative_to(ROOT).as_posix()
        for first_line, language, lines in shell_blocks(path):
            commands += block_commands(name, first_line, language, lines)
    return commands


def python_blocks() -> List[Tuple[str, str]]:
    blocks = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
            line = text[: match.start()].count("\n") + 2
            blocks.append((f"{path.relative_to(ROOT).as_posix()}:{line}", match.group(1)))
    return blocks


COMMANDS = doc_commands()


# --------------------------------------------------------------------------------------- what a command is


@dataclass
class Invocation:
    """One simple command of a line (lines are split at ``&&``), as the test understands it."""

    words: List[str]
    env: Dict[str, str]
    module: Optional[str] = None  # python -m MODULE / a console script of the package
    args: List[str] = dataclasses.field(default_factory=list)
    script: Optional[Path] = None  # bash scripts/X.sh, python benchmarks/X.py

    @property
    def program(self) -> str:
        return Path(self.words[0]).name if self.words else ""


def invocations(text: str) -> List[Invocation]:
    result = []
    for part in text.split("&&"):
        words = shlex.split(part)
        env = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        result.append(understand(Invocation(words, env)))
    return result


def understand(invocation: Invocation) -> Invocation:
    words, program = invocation.words, invocation.program
    if program in CLI_MODULES:
        invocation.module, invocation.args = CLI_MODULES[program], words[1:]
    elif program == NODE_PROGRAM:
        invocation.module, invocation.args = NODE_MODULE, words[1:]
    elif program in ("python", "python3", "torchrun") and "-m" in words:
        at = words.index("-m")
        invocation.module, invocation.args = words[at + 1], words[at + 2 :]
    elif program in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
        invocation.script, invocation.args = ROOT / words[1], words[2:]
    elif program == "bash" and len(words) > 1:
        invocation.script, invocation.args = ROOT / words[1], words[2:]
    return invocation


def long_options(args: List[str]) -> List[str]:
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("--")]


# ------------------------------------------------------------------------------------------------ checks


def parse_cli(module: str, args: List[str]) -> argparse.Namespace:
    """The command line parsed by the package's own parser; an argparse error fails with its message."""
    parser = importlib.import_module(module).build_parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"{module} refuses {shlex.join(args)}: {errors.getvalue().strip()}")


def check_node_arguments(args: List[str]) -> None:
    from cityscapes_seg_ros.node.__main__ import LIFECYCLE_FLAG
    from cityscapes_seg_ros.node.params import SPECS

    own = args[: args.index("--ros-args")] if "--ros-args" in args else args
    assert set(own) <= {LIFECYCLE_FLAG}, f"the node takes {LIFECYCLE_FLAG} and ROS args, not {own}"
    ros = args[len(own) + 1 :]
    index = 0
    while index < len(ros):
        flag = ros[index]
        value = ros[index + 1] if index + 1 < len(ros) else ""
        if flag == "--params-file":
            assert (ROOT / value).is_file(), f"--params-file {value} does not exist"
        elif flag == "-p":
            name, _, text = value.partition(":=")
            assert name in SPECS, f"-p {name}: the node has no such parameter"
            problem = SPECS[name].problem(yaml.safe_load(text))
            assert problem is None, f"-p {value}: {problem}"
        else:
            pytest.fail(f"ROS argument {flag} is not one the docs test knows")
        index += 2


def launch_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("docs_segmentation_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_launch_arguments(words: List[str]) -> None:
    """Each NAME:=VALUE is a launch argument of the launch file's own or a node parameter the node accepts."""
    from cityscapes_seg_ros.node.params import SPECS

    assert words[2:4] == ["cityscapes_seg_ros", LAUNCH_FILE.name], f"unknown launch file in {words}"
    launch = launch_module()
    given = dict(word.split(":=", 1) for word in words[4:])
    passed = set(launch.node_parameters(given))
    unknown = set(given) - passed - set(launch.ARGUMENTS)
    assert not unknown, f"{sorted(unknown)}: neither launch arguments nor node parameters"
    for name in passed - {"use_sim_time"}:
        problem = SPECS[name].problem(yaml.safe_load(given[name]))
        assert problem is None, f"{name}:={given[name]}: {problem}"
    for name in ("lifecycle", "rviz"):
        assert given.get(name, "false").lower() in ("true", "false", "1", "0"), f"{name}:={given[name]}"


def check_script(invocation: Invocation) -> None:
    script = invocation.script
    assert script.is_file(), f"{script.relative_to(ROOT)} does not exist"
    text = script.read_text(encoding="utf-8")
    for option in long_options(invocation.args):
        if script.suffix == ".py":
            assert re.search(rf"add_argument\(\s*(\"[^\"]*\",\s*)*\"{re.escape(option)}\"", text), (
                f"{script.name} has no option {option}"
            )
        else:
            assert re.search(rf"(^|[\s|(]){re.escape(option)}(\)|\s*\|)", text, flags=re.M), (
                f"{script.name} does not take {option}"
            )


def check(invocation: Invocation) -> None:
    """Everything that can be checked without running the command."""
    if invocation.module in CLI_MODULES.values():
        parse_cli(invocation.module, invocation.args)
    elif invocation.module == NODE_MODULE:
        check_node_arguments(invocation.args)
    elif invocation.module is not None and invocation.module.startswith("cityscapes_seg_ros"):
        assert importlib.util.find_spec(invocation.module), f"no module {invocation.module}"
    elif invocation.script is not None:
        check_script(invocation)
    elif invocation.words[:2] == ["ros2", "launch"]:
        check_launch_arguments(invocation.words)


def runnable(invocation: Invocation) -> bool:
    return invocation.module in CLI_MODULES.values() and invocation.program != "torchrun" and not invocation.env


def check_run_by(command: DocCommand) -> None:
    path = ROOT / command.run_by
    assert path.is_file(), f"{command.source}: 'run by: {command.run_by}': no such file"
    text = path.read_text(encoding="utf-8")
    if command.run_by == ".ci/run":
        assert command.text in [line.strip() for line in text.splitlines()], (
            f"{command.source}: .ci/run does not run {command.text!r}"
        )
        return
    for invocation in invocations(command.text):
        program = invocation.script.name if invocation.script is not None else invocation.program
        assert program in text, f"{command.source}: {command.run_by} does not run {program}"
        for option in long_options(invocation.args):
            assert option in text, f"{command.source}: {command.run_by} does not use {option}"


@pytest.fixture(scope="module")
def stand_in_data(tmp_path_factory) -> Path:
    """A synthetic Cityscapes (``cityscapes/``), label-id predictions for it and a bag made from it."""
    from support.synthetic_cityscapes import write_split

    from cityscapes_seg_ros.cli.bag_main import main as bag_main

    folder = tmp_path_factory.mktemp("docs_stand_ins")
    write_split(folder / "cityscapes", folder / "predictions" / "labelIds", frames_per_city=2, with_images=True)
    bag = folder / STAND_IN_BAG
    assert bag_main(["from-cityscapes", "--cityscapes-root", str(folder / "cityscapes"), "--out", str(bag)]) == 0
    return folder


def scratch_for(command: DocCommand, folder: Path, stand_ins: Path) -> Path:
    """``folder`` made to look like the repository (links to its top-level entries) for ``command`` to run in,
    with the stand-in data it reads."""
    for entry in ROOT.iterdir():
        if not entry.name.startswith("."):
            (folder / entry.name).symlink_to(entry)
    if STOOD_IN & set(command.needs):
        words = shlex.split(command.text.replace("&&", " "))
        written = {words[i + 1].rstrip("/") for i, word in enumerate(words[:-1]) if word == "--out"}
        for entry in stand_ins.iterdir():
            if entry.name not in written:
                (folder / entry.name).symlink_to(entry)
    return folder


def run(invocation: Invocation, cwd: Path) -> subprocess.CompletedProcess:
    subcommand = next((arg for arg in invocation.args if not arg.startswith("-")), "")
    key = (invocation.module, subcommand)
    argv = [sys.executable, "-m", invocation.module, *invocation.args, *CHEAP_FORMS.get(key, [])]
    python_path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path)}
    env["HF_HUB_OFFLINE"] = "1"  # nothing is downloaded: what needs the hub is marked so
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SEC)
    assert result.returncode in ACCEPTED_STATUS.get(key, (0,)), (
        f"{shlex.join(argv)} -> exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result


# ------------------------------------------------------------------------------------------------ tests


def test_the_docs_hold_commands_and_marks():
    """The reader works: if it found nothing (a renamed folder, a broken pattern) every other test would pass."""
    assert len(DOC_FILES) >= 8 and len(COMMANDS) >= 30
    assert any(c.needs for c in COMMANDS) and any(c.run_by for c in COMMANDS)
    assert any(not c.needs and not c.run_by for c in COMMANDS)
    assert len(python_blocks()) >= 3


@pytest.mark.parametrize("command", COMMANDS, ids=[c.source for c in COMMANDS])
def test_every_command_is_run_or_marked(command, tmp_path, stand_in_data):
    unknown = set(command.needs) - set(NEEDS)
    assert not unknown, f"{command.source}: unknown needs {sorted(unknown)}; known: {', '.join(NEEDS)}"
    parts = invocations(command.text)
    for invocation in parts:
        check(invocation)
    if command.run_by:
        check_run_by(command)
    if not set(command.needs) <= STOOD_IN or command.run_by:
        return
    not_runnable = [shlex.join(p.words) for p in parts if not runnable(p)]
    assert not not_runnable, (
        f"{command.source}: {not_runnable} is not run by the docs test: mark it '# needs: ...' or '# run by: FILE'"
    )
    scratch = scratch_for(command, tmp_path, stand_in_data)
    for invocation in parts:
        run(invocation, scratch)


def test_the_readme_gives_exactly_the_two_set_up_commands():
    readme = [c for c in COMMANDS if c.source.startswith("README.md:")]
    assert len(readme) == 2, [c.text for c in readme]
    main_job, tests = readme
    assert main_job.text.startswith("bash scripts/setup.sh") and "cityscapes-seg demo" in main_job.text
    assert tests.text == "bash scripts/setup.sh --test && .venv/bin/python -m pytest -q tests"
    assert tests.run_by == ".ci/run"


def test_every_subcommand_of_the_command_lines_is_shown():
    shown = set()
    for command in COMMANDS:
        for invocation in invocations(command.text):
            if invocation.module in CLI_MODULES.values():
                shown.add((invocation.module, next(a for a in invocation.args if not a.startswith("-"))))
    for module in CLI_MODULES.values():
        parser = importlib.import_module(module).build_parser()
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for name in actions[0].choices:
            assert (module, name) in shown, f"no command in the docs shows {module} {name}"


@pytest.fixture
def stand_in_hub(monkeypatch, tiny_model_files):
    """upernet_internimage_t_... is the tiny official fixture, and its hub checkpoint the fixture's file."""
    from cityscapes_seg_ros.models import registry
    from cityscapes_seg_ros.segmenter import checkpoint
    from cityscapes_seg_ros.segmenter.options import read_model_config

    config_path, checkpoint_path = tiny_model_files
    released = registry.MODEL_REGISTRY[T_MODEL]
    tiny = registry.config_from_mmseg(read_model_config(config_path), name=T_MODEL)
    monkeypatch.setitem(registry.MODEL_REGISTRY, T_MODEL, dataclasses.replace(tiny, pretrained=released.pretrained))
    monkeypatch.setattr(checkpoint, "download_from_hub", lambda *args, **kwargs: checkpoint_path)


@pytest.mark.parametrize("source, code", python_blocks(), ids=[source for source, _ in python_blocks()])
def test_python_examples_run(source, code, stand_in_hub, tmp_path, monkeypatch):
    # A block whose first comment lines say ``# needs: ...`` (e.g. launch_ros, from a ROS 2 distro) is compiled only.
    leading = [
        line.lstrip("# ").strip() for line in itertools.takewhile(lambda text: text.startswith("#"), code.splitlines())
    ]
    needs, _ = marks(leading)
    assert set(needs) <= set(NEEDS), f"{source}: unknown needs {sorted(set(needs) - set(NEEDS))}"
    compiled = compile(code, source, "exec")
    if needs:
        return
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    cv2.imwrite("frame.png", rng.integers(0, 256, (64, 128, 3), dtype=np.uint8))
    exec(compiled, {"__name__": "docs_example"})  # noqa: S102 - our own docs


def heading_anchors(path: Path) -> set:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def doc_links(path: Path) -> List[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.relative_to(ROOT).as_posix() for p in DOC_FILES])
def test_links_resolve(path):
    broken = []
    for link in doc_links(path):
        if re.match(r"[a-z]+:", link):  # https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no such file")
        elif anchor and anchor not in heading_anchors(file):
            broken.append(f"{link}: no heading #{anchor} in {file.name}")
    assert not broken, f"{path.name}: {broken}"


def test_the_readme_links_every_page():
    readme = ROOT / "README.md"
    linked = {(readme.parent / link.partition("#")[0]).resolve() for link in doc_links(readme)}
    pages = set((ROOT / "docs").glob("*.md"))
    assert pages and not {p.resolve() for p in pages} - linked


def node_parameter_table() -> Dict[str, Tuple[str, str]]:
    text = (ROOT / "docs" / "node.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \| (start-up|runtime) \|", text, flags=re.M)
    return {name: (default, changes) for name, default, changes in rows}


def test_the_node_page_lists_every_parameter_with_its_default():
    from cityscapes_seg_ros.node.params import PARAMETERS

    table = node_parameter_table()
    assert list(table) == [spec.name for spec in PARAMETERS]
    for spec in PARAMETERS:
        default, changes = table[spec.name]
        assert yaml.safe_load(default) == spec.default, f"{spec.name}: docs say {default}, the node {spec.default}"
        assert changes == ("runtime" if spec.runtime else "start-up"), f"{spec.name}: docs say {changes}"


def test_the_node_page_names_every_launch_argument():
    text = (ROOT / "docs" / "node.md").read_text(encoding="utf-8")
    for name in launch_module().ARGUMENTS:
        assert f"`{name}`" in text, f"launch argument {name} is not in docs/node.md"


def test_the_models_page_explains_every_model_option():
    from cityscapes_seg_ros.segmenter.options import add_model_arguments

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    shown = [a for a in parser._actions if a.help != argparse.SUPPRESS]  # not the old spelling --config
    options = [o for a in shown for o in a.option_strings if o.startswith("--") and o != "--help"]
    assert options
    for option in options:
        assert f"| `{option}` |" in text, f"model option {option} has no row in docs/models.md"
