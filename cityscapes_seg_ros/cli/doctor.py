"""``cityscapes-seg doctor``: can this machine run the node, how fast, and what to fix — one screen.

Each line is ``ok``, ``warn`` (works, with a limit worth knowing) or ``missing`` (with the fix). The exit
status is 1 when the node cannot run here (no torch, no rclpy or RMW, messages not importable), else 0.
``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

OK, WARN, MISSING = "ok", "warn", "missing"
MIN_PYTHON = (3, 10)
SETUP_ROS = "bash scripts/setup.sh --ros (or source your ROS 2 distro's setup.bash)"
# rclpy's major.minor on PyPI / in the distros -> distro (measured from the wheels' metadata and the distros).
RCLPY_DISTROS = {(3, 3): "humble", (7, 1): "jazzy", (9, 1): "kilted"}
TESTED_DISTROS = ("jazzy", "kilted")
NODE_MESSAGES = ("sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces")


@dataclass
class Check:
    """One line of the report; ``blocking``: a missing one means the node cannot run here."""

    topic: str
    status: str
    detail: str
    fix: str = ""
    blocking: bool = False


def import_module(name: str) -> Any:
    """``importlib.import_module``; the tests replace it to play missing packages."""
    return importlib.import_module(name)


def distribution_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


# ------------------------------------------------------------------------------------------- the checks


def check_python(version: Sequence[int] = tuple(sys.version_info[:3])) -> List[Check]:
    text = ".".join(str(v) for v in version)
    if tuple(version[:2]) < MIN_PYTHON:
        return [Check("Python", MISSING, f"{text} ({sys.executable})", "Python 3.10 or newer is needed", True)]
    return [Check("Python", OK, f"{text} ({sys.executable})")]


def check_torch() -> List[Check]:
    try:
        torch = import_module("torch")
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install (OSError from a shared library)
        return [
            Check(
                "torch",
                MISSING,
                f"not importable ({_first_line(exc)})",
                "bash scripts/setup.sh (CPU), or pip install torch (a CUDA build for a GPU)",
                True,
            )
        ]
    cuda = getattr(torch.version, "cuda", None)
    if not cuda:
        return [
            Check(
                "torch",
                WARN,
                f"{torch.__version__}, a CPU-only build",
                "for a GPU install a CUDA build: pip install torch --index-url "
                "https://download.pytorch.org/whl/cu130 (then rerun scripts/setup.sh)",
            )
        ]
    return [Check("torch", OK, f"{torch.__version__}, CUDA {cuda}")]


def check_gpu() -> List[Check]:
    try:
        torch = import_module("torch")
    except Exception:  # noqa: BLE001 - reported by check_torch
        return [Check("GPU", MISSING, "unknown: torch is not importable", "install torch first")]
    if not torch.cuda.is_available():
        why = "torch is a CPU-only build" if not torch.version.cuda else "no CUDA device visible (driver?)"
        return [
            Check(
                "GPU",
                WARN,
                f"none ({why}): the node runs on the CPU, far slower",
                "a CUDA GPU with its driver and a CUDA build of torch",
            )
        ]
    from ..ops.op_records import cuda_arch_list

    checks = []
    archs = cuda_arch_list()
    for index in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(index)
        detail = f"cuda:{index} {torch.cuda.get_device_name(index)}, compute capability {major}.{minor}"
        if runs_on(archs, (major, minor)):
            checks.append(Check("GPU", OK, detail))
        else:
            checks.append(
                Check(
                    "GPU",
                    WARN,
                    f"{detail}; the CUDA op is built for {archs}",
                    f"TORCH_CUDA_ARCH_LIST={major}.{minor} bash scripts/setup.sh",
                )
            )
    return checks


def runs_on(arch_list: str, capability: Tuple[int, int]) -> bool:
    """Whether a CUDA build for ``arch_list`` ("8.7;8.9;9.0+PTX") runs on a GPU of ``capability``: built for
    it, or PTX of an older architecture that the driver compiles for it."""
    for entry in arch_list.replace(",", ";").replace(" ", ";").split(";"):
        if not entry:
            continue
        major, minor = (int(v) for v in entry.replace("+PTX", "").split("."))
        if (major, minor) == tuple(capability) or (entry.endswith("+PTX") and (major, minor) <= tuple(capability)):
            return True
    return False


def check_compiled_ops() -> List[Check]:
    from ..ops import compiled
    from ..ops.op_records import OPS

    checks = []
    for name, record in OPS.items():
        try:
            op = compiled.load(name)
        except Exception as exc:  # noqa: BLE001 - e.g. no torch for a torch op
            op, reason = None, _first_line(exc)
        else:
            reason = compiled.unavailable_reason(name)
        what = f"compiled op {name}"
        if op is not None:
            checks.append(Check(what, OK, f"loaded ({record.device_type})"))
        elif record.device_type == "cuda" and reason and "not available" in reason:
            checks.append(Check(what, WARN, f"not used: {reason} (the CPU path is used)"))
        else:
            checks.append(
                Check(
                    what,
                    WARN,
                    f"unavailable, its slower fallback is used: {reason or 'unknown'}",
                    "bash scripts/setup.sh (builds the ops; a C++ compiler, and nvcc for CUDA)",
                )
            )
    return checks


def rclpy_distro(version: Optional[str], ros_distro: Optional[str]) -> Optional[str]:
    """The ROS 2 distro of an rclpy version (``ROS_DISTRO`` when the version is not known)."""
    if version:
        parts = version.split(".")
        try:
            key = (int(parts[0]), int(parts[1]))
        except (IndexError, ValueError):
            key = None
        if key in RCLPY_DISTROS:
            return RCLPY_DISTROS[key]
        if key is not None and key[0] == 9:
            return "kilted"
    return ros_distro.lower() if ros_distro else None


def rclpy_import_problem(timeout_sec: float = 120.0) -> Optional[str]:
    """None when ``import rclpy`` works in a fresh interpreter, else why not. rcl ends the whole process on import
    when RMW_IMPLEMENTATION names an RMW it cannot load (exit 102): the doctor must not import it blind."""
    if "rclpy" in sys.modules:
        return None
    try:
        result = subprocess.run(
            [sys.executable, "-c", "import rclpy"], capture_output=True, text=True, timeout=timeout_sec
        )
    except subprocess.TimeoutExpired:
        return f"import rclpy did not finish within {timeout_sec:.0f} s"
    if result.returncode == 0:
        return None
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    last = re.sub(r"^\[\w+\] \[[\d.]+\] \[\w+\]: ", "", last).split(", at /", 1)[0]  # rcl's log prefix
    return f"import rclpy exits with status {result.returncode}: {last[:200]}"


def check_rclpy() -> List[Check]:
    problem = rclpy_import_problem()
    if problem is not None:
        rmw = os.environ.get("RMW_IMPLEMENTATION")
        fix = f"unset RMW_IMPLEMENTATION for Fast DDS, or install {rmw} (see the RMW line)" if rmw else SETUP_ROS
        return [Check("ROS 2 rclpy", MISSING, problem, fix, True)]
    try:
        rclpy = import_module("rclpy")
    except Exception as exc:  # noqa: BLE001 - ImportError, or the RMW library not found (OSError / ImportError)
        return [Check("ROS 2 rclpy", MISSING, f"not importable ({_first_line(exc)})", SETUP_ROS, True)]
    version = distribution_version("ros-rclpy")
    env_distro = os.environ.get("ROS_DISTRO")
    distro = rclpy_distro(version, env_distro)
    where = f"rclpy {version or '(from a ROS 2 install)'} at {Path(rclpy.__file__).parent}"
    if distro is None:
        return [
            Check(
                "ROS 2 rclpy",
                WARN,
                f"{where}, distro unknown (no ROS_DISTRO, version not known)",
                "the node is tested on Jazzy and Kilted, API-checked on Humble",
            )
        ]
    detail = f"{where}, ROS 2 {distro.capitalize()}"
    if env_distro and env_distro.lower() != distro:
        return [
            Check(
                "ROS 2 rclpy",
                WARN,
                f"{detail}, but ROS_DISTRO={env_distro}",
                "use one ROS 2 distro: source its setup.bash or use its wheels, not both",
            )
        ]
    if distro == "humble":
        return [Check("ROS 2 rclpy", WARN, f"{detail}: API-checked, not tested (no Humble wheels)")]
    if distro not in TESTED_DISTROS:
        return [Check("ROS 2 rclpy", WARN, f"{detail}: not tested (tested: Jazzy, Kilted)")]
    return [Check("ROS 2 rclpy", OK, detail)]


def check_messages() -> List[Check]:
    checks = []
    try:
        import_module("cityscapes_seg_ros.msg")
        checks.append(Check("messages cityscapes_seg_ros", OK, "ClassStatistics, ClassStat importable"))
    except Exception as exc:  # noqa: BLE001
        checks.append(
            Check(
                "messages cityscapes_seg_ros",
                MISSING,
                f"not importable ({_first_line(exc)})",
                "bash scripts/setup.sh --ros (scripts/build_msgs.sh), or colcon build in a ROS 2 "
                "workspace and source install/setup.bash",
                True,
            )
        )
    missing = []
    for package in NODE_MESSAGES:
        try:
            import_module(f"{package}.msg")
        except Exception:  # noqa: BLE001
            missing.append(package)
    if missing:
        wheels = " ".join("ros-" + p.replace("_", "-") for p in missing)
        checks.append(
            Check(
                "messages ROS 2",
                MISSING,
                f"not importable: {', '.join(missing)}",
                f"pip install {wheels} (or source the ROS 2 distro)",
                True,
            )
        )
    else:
        checks.append(Check("messages ROS 2", OK, ", ".join(NODE_MESSAGES)))
    try:
        vision = import_module("vision_msgs.msg")
        if not hasattr(vision, "LabelInfo"):
            raise ImportError("vision_msgs older than 4.1 (no LabelInfo)")
        checks.append(Check("messages vision_msgs", OK, "LabelInfo: the class map is published"))
    except Exception as exc:  # noqa: BLE001
        checks.append(
            Check(
                "messages vision_msgs",
                WARN,
                f"not importable ({_first_line(exc)}): the node runs without publishing label_info",
                "scripts/build_vision_msgs.sh, or apt install ros-<distro>-vision-msgs",
            )
        )
    return checks


def rmw_library_found(name: str) -> Optional[str]:
    """Where the RMW implementation ``name`` is: its wheel's package, or lib<name>.so in a ROS 2 prefix."""
    spec = importlib.util.find_spec(name)
    if spec is not None:
        return f"the {name} wheel"
    folders = [Path(p) / "lib" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    folders += [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    for folder in folders:
        if (folder / f"lib{name}.so").is_file():
            return str(folder / f"lib{name}.so")
    return None


def check_rmw() -> List[Check]:
    name = os.environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp"
    how = "RMW_IMPLEMENTATION" if os.environ.get("RMW_IMPLEMENTATION") else "default"
    found = rmw_library_found(name)
    if found is None:
        wheel = "ros-" + name.replace("_", "-")
        return [
            Check(
                "RMW / DDS",
                MISSING,
                f"{name} ({how}) not found",
                f"pip install {wheel}, or unset RMW_IMPLEMENTATION for Fast DDS",
                True,
            )
        ]
    detail = f"{name} ({how}), {found}"
    if name != "rmw_fastrtps_cpp":
        return [Check("RMW / DDS", WARN, f"{detail}: the package is tested with Fast DDS (rmw_fastrtps_cpp)")]
    return [Check("RMW / DDS", OK, detail)]


def model_label(name: str) -> str:
    """``upernet_internimage_l_512x1024_160k_mapillary2cityscapes`` -> ``UperNet L mapillary``."""
    parts = name.split("_")
    head = {"upernet": "UperNet", "segformer": "SegFormer"}.get(parts[0], parts[0])
    return f"{head} {parts[2].upper()}" + (" mapillary" if "mapillary" in name else "")


def check_hub_cache() -> List[Check]:
    from ..segmenter import MODEL_REGISTRY, cached_checkpoint, download_command

    checks = []
    for name, cfg in MODEL_REGISTRY.items():
        location = cfg.pretrained
        path = cached_checkpoint(location.repo_id, location.filename)
        topic = f"weights {model_label(name)}"
        if path is not None:
            checks.append(Check(topic, OK, f"cached ({path})"))
            continue
        fix = (
            ""
            if any(c.status == WARN for c in checks)
            else (
                "they download on first use with network; or fetch as shown (or the file's URL "
                f"{location.url.rsplit('/', 1)[0]}/<file>) and pass --checkpoint FILE"
            )
        )
        checks.append(Check(topic, WARN, f"not cached: {download_command(location.repo_id, location.filename)}", fix))
    return checks


def check_speed(budget_sec: float = 3.0) -> List[Check]:
    try:
        import_module("torch")
        from ..segmenter import estimate_speed

        estimate = estimate_speed(budget_sec=budget_sec)
    except Exception as exc:  # noqa: BLE001 - no torch, out of memory, ...: the estimate is only advice
        return [Check("speed estimate", WARN, f"not measured ({_first_line(exc)})")]
    h, w = estimate.measured_size
    th, tw = estimate.target_size
    detail = (
        f"ESTIMATE ~{estimate.estimated_fps:.2g} frames/s ({_duration(estimate.estimated_ms)} a frame) "
        f"for {model_label(estimate.model)} at {tw}x{th} on {estimate.device}: measured at {w}x{h} "
        f"(DCNv3 core {estimate.dcnv3_ms:.0f} ms, head and dense layers {estimate.rest_ms:.0f} ms, "
        f"median of {estimate.runs}), scaled x{estimate.flops_ratio:.0f} by FLOPs; network only"
    )
    status = OK if estimate.device.startswith("cuda") else WARN
    return [Check("speed", status, detail, "" if status == OK else "a CUDA GPU is many times faster")]


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.0f} s"


# ------------------------------------------------------------------------------------------ the report

CHECKS: Tuple[Callable[[], List[Check]], ...] = (
    check_python,
    check_torch,
    check_gpu,
    check_compiled_ops,
    check_rclpy,
    check_messages,
    check_rmw,
    check_hub_cache,
)


def run_checks(benchmark: bool = True) -> List[Check]:
    checks: List[Check] = []
    for probe in CHECKS:
        try:
            checks += probe()
        except Exception as exc:  # noqa: BLE001 - one probe failing must not hide the others
            checks.append(Check(probe.__name__.removeprefix("check_"), WARN, f"check failed: {_first_line(exc)}"))
    if benchmark:
        checks += check_speed()
    return checks


def node_can_run(checks: Sequence[Check]) -> bool:
    return not any(c.blocking and c.status == MISSING for c in checks)


def format_report(checks: Sequence[Check]) -> str:
    width = max(len(c.topic) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status:<8} {check.topic:<{width}}  {check.detail}")
        if check.fix and check.status != OK:
            lines.append(f"{'':<8} {'':<{width}}  fix: {check.fix}")
    verdict = "the node can run here" if node_can_run(checks) else "the node CANNOT run here: fix the missing lines"
    lines.append(verdict)
    return "\n".join(lines)


def add_doctor_parser(sub) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this machine for the node: torch, GPU, ops, ROS 2, weights, speed",
        description=__doc__.split("\n\n")[1],
    )
    doctor.add_argument("--json", action="store_true", help="print JSON instead of the report")
    doctor.add_argument("--no-benchmark", action="store_true", help="skip the ~3-second speed estimate")


def run_doctor(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):  # the loaders' INFO lines would break the one screen
        logging.getLogger("cityscapes_seg_ros").setLevel(logging.WARNING)
    checks = run_checks(benchmark=not args.no_benchmark)
    if args.json:
        print(json.dumps({"node_can_run": node_can_run(checks), "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(format_report(checks))
    return 0 if node_can_run(checks) else 1
