"""``cityscapes-seg doctor``: every line's failure branch (probes replaced), and one real run on this machine."""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cityscapes_seg_ros.cli import doctor
from cityscapes_seg_ros.cli.main import main
from cityscapes_seg_ros.segmenter.speed_estimate import SpeedEstimate, network_flops, target_input_size

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

T = "upernet_internimage_t_512x1024_160k_cityscapes"


def only(checks, topic_start):
    found = [c for c in checks if c.topic.startswith(topic_start)]
    assert found, [c.topic for c in checks]
    return found


@pytest.fixture
def without(monkeypatch):
    """``without("torch", ...)``: those modules fail to import for the doctor."""

    def hide(*names):
        real = doctor.import_module

        def fake(name):
            if name in names:
                raise ImportError(f"No module named {name!r}")
            return real(name)

        monkeypatch.setattr(doctor, "import_module", fake)

    return hide


def test_an_old_python_is_missing():
    (check,) = doctor.check_python((3, 9, 18))
    assert check.status == "missing" and check.blocking and "3.10" in check.fix
    assert doctor.check_python((3, 12, 1))[0].status == "ok"


def test_without_torch_the_node_cannot_run_and_the_exit_status_says_so(without, capsys):
    without("torch")
    (check,) = doctor.check_torch()
    assert check.status == "missing" and check.blocking and "setup.sh" in check.fix
    assert doctor.check_gpu()[0].status == "missing"
    assert doctor.check_speed()[0].status == "warn" and "not measured" in doctor.check_speed()[0].detail
    assert main(["doctor", "--json", "--no-benchmark"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["node_can_run"] is False
    assert [c["status"] for c in report["checks"] if c["topic"] == "torch"] == ["missing"]


def test_torch_builds_cpu_only_and_cuda(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    (check,) = doctor.check_torch()
    assert check.status == "warn" and "CPU-only" in check.detail and "download.pytorch.org" in check.fix
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert doctor.check_torch()[0].status == "ok" and "CUDA 13.0" in doctor.check_torch()[0].detail


@pytest.mark.parametrize("capability, status", [((9, 0), "ok"), ((7, 5), "warn"), ((8, 6), "warn"), ((10, 0), "ok")])
def test_the_gpu_and_whether_the_cuda_op_is_built_for_it(monkeypatch, capability, status):
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Some GPU")
    (check,) = doctor.check_gpu()
    assert check.status == status and f"compute capability {capability[0]}.{capability[1]}" in check.detail
    if status == "warn":
        assert f"TORCH_CUDA_ARCH_LIST={capability[0]}.{capability[1]}" in check.fix


def test_no_gpu_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    (check,) = doctor.check_gpu()
    assert check.status == "warn" and "no CUDA device visible" in check.detail and not check.blocking


def test_a_compiled_op_that_failed_to_build_names_the_reason(monkeypatch):
    from cityscapes_seg_ros.ops import compiled
    from cityscapes_seg_ros.ops.op_records import OPS

    reasons = {"dcnv3_cuda": "torch.cuda is not available", "dcnv3_cpu": "build failed: RuntimeError: no c++"}
    monkeypatch.setattr(compiled, "load", lambda name: None if name in reasons else object())
    monkeypatch.setattr(compiled, "unavailable_reason", lambda name: reasons.get(name))
    checks = {c.topic: c for c in doctor.check_compiled_ops()}
    assert set(checks) == {f"compiled op {name}" for name in OPS}
    assert checks["compiled op dcnv3_cpu"].status == "warn" and "no c++" in checks["compiled op dcnv3_cpu"].detail
    assert "setup.sh" in checks["compiled op dcnv3_cpu"].fix
    assert checks["compiled op dcnv3_cuda"].status == "warn" and "not used" in checks["compiled op dcnv3_cuda"].detail
    assert checks["compiled op png_unfilter"].status == "ok"


def test_without_rclpy_the_node_cannot_run(without):
    without("rclpy")
    (check,) = doctor.check_rclpy()
    assert check.status == "missing" and check.blocking and "setup.sh --ros" in check.fix
    assert not doctor.node_can_run([check])


@pytest.mark.parametrize(
    "version, env, distro",
    [
        ("3.3.14", None, "humble"),
        ("7.1.6", None, "jazzy"),
        ("9.1.2", None, "kilted"),
        (None, "Jazzy", "jazzy"),
        ("12.0.1", None, None),
        (None, None, None),
    ],
)
def test_rclpy_versions_map_to_their_distro(version, env, distro):
    assert doctor.rclpy_distro(version, env) == distro


@pytest.mark.parametrize(
    "version, env, status, words",
    [
        ("3.3.14", None, "warn", "Humble: API-checked"),
        ("7.1.6", None, "ok", "Jazzy"),
        ("7.1.6", "kilted", "warn", "ROS_DISTRO=kilted"),
        ("12.0.1", None, "warn", "distro unknown"),
    ],
)
def test_the_rclpy_line_by_distro(monkeypatch, version, env, status, words):
    pytest.importorskip("rclpy")
    monkeypatch.setattr(doctor, "distribution_version", lambda name: version)
    if env:
        monkeypatch.setenv("ROS_DISTRO", env)
    else:
        monkeypatch.delenv("ROS_DISTRO", raising=False)
    (check,) = doctor.check_rclpy()
    assert check.status == status and words in check.detail, check


def test_messages_not_built_or_missing(without):
    without("cityscapes_seg_ros.msg", "diagnostic_msgs.msg", "vision_msgs.msg")
    checks = {c.topic: c for c in doctor.check_messages()}
    own, ros, vision = (checks[f"messages {k}"] for k in ("cityscapes_seg_ros", "ROS 2", "vision_msgs"))
    assert own.status == "missing" and own.blocking and "build_msgs.sh" in own.fix
    assert ros.status == "missing" and ros.blocking and "pip install ros-diagnostic-msgs" in ros.fix
    assert vision.status == "warn" and not vision.blocking and "label_info" in vision.detail


def test_rmw_not_found_or_not_fast_dds(monkeypatch):
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_nonexistent_cpp")
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    (check,) = doctor.check_rmw()
    assert check.status == "missing" and check.blocking and "pip install ros-rmw-nonexistent-cpp" in check.fix
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")
    monkeypatch.setattr(doctor, "rmw_library_found", lambda name: f"/opt/ros/lib/lib{name}.so")
    (check,) = doctor.check_rmw()
    assert check.status == "warn" and "tested with Fast DDS" in check.detail


def test_an_rmw_that_rcl_cannot_load_is_reported_as_json_not_an_exit_102(tmp_path):
    """rcl ends the process on ``import rclpy`` when RMW_IMPLEMENTATION names an RMW it cannot load."""
    pytest.importorskip("rclpy")
    if importlib.util.find_spec("rmw_cyclonedds_cpp") is not None:
        pytest.skip("rmw_cyclonedds_cpp is installed here")
    env = {**os.environ, "RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    result = subprocess.run(
        [sys.executable, "-m", "cityscapes_seg_ros.cli.main", "doctor", "--json", "--no-benchmark"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    checks = {c["topic"]: c for c in report["checks"]}
    assert report["node_can_run"] is False
    rmw, rclpy = checks["RMW / DDS"], checks["ROS 2 rclpy"]
    assert rmw["status"] == "missing" and "pip install ros-rmw-cyclonedds-cpp" in rmw["fix"]
    assert rclpy["status"] == "missing" and "rmw_cyclonedds_cpp" in rclpy["detail"]
    assert "unset RMW_IMPLEMENTATION" in rclpy["fix"]


def test_rmw_found_in_a_ros_prefix(monkeypatch, tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "librmw_test_cpp.so").write_bytes(b"")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    assert doctor.rmw_library_found("rmw_test_cpp") == str(tmp_path / "lib" / "librmw_test_cpp.so")


def test_the_hub_cache_line_of_each_of_the_nine_models(monkeypatch, tmp_path):
    from cityscapes_seg_ros import segmenter

    cached = tmp_path / f"{T}.pth"
    monkeypatch.setattr(segmenter, "cached_checkpoint", lambda repo, filename, *a: cached if T in filename else None)
    checks = doctor.check_hub_cache()
    assert len(checks) == 9 and len({c.topic for c in checks}) == 9
    assert checks[0].topic == "weights UperNet T" and checks[0].status == "ok" and str(cached) in checks[0].detail
    assert all(c.status == "warn" and " download OpenGVLab/InternImage " in c.detail for c in checks[1:])
    assert checks[1].fix and not any(c.fix for c in checks[2:])  # the fix once, not nine times


def test_the_hub_cache_lookup_reads_a_real_cache_layout(tmp_path):
    from cityscapes_seg_ros.segmenter.hub_cache import cached_checkpoint

    repo = tmp_path / "models--OpenGVLab--InternImage"
    (repo / "snapshots" / ("b" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("b" * 40) / "x.pth").write_bytes(b"PK")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    assert (
        cached_checkpoint("OpenGVLab/InternImage", "x.pth", cache_dir=tmp_path)
        == repo / "snapshots" / ("b" * 40) / "x.pth"
    )
    assert cached_checkpoint("OpenGVLab/InternImage", "y.pth", cache_dir=tmp_path) is None


@pytest.mark.parametrize("version, tool", [("0.33.2", "huggingface-cli"), ("0.34.0", "hf"), ("2.4.0", "hf")])
def test_the_download_command_of_the_installed_huggingface_hub(monkeypatch, version, tool):
    import importlib.metadata

    from cityscapes_seg_ros.segmenter.hub_cache import download_command

    monkeypatch.setattr(importlib.metadata, "version", lambda name: version)
    assert download_command("OpenGVLab/InternImage", "x.pth") == f"{tool} download OpenGVLab/InternImage x.pth"


def test_the_speed_line_is_an_estimate_or_says_why_not(monkeypatch):
    from cityscapes_seg_ros import segmenter

    def fail(**kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(segmenter, "estimate_speed", fail)
    (check,) = doctor.check_speed()
    assert check.status == "warn" and "CUDA out of memory" in check.detail
    estimate = SpeedEstimate(T, "cuda:0", (512, 1024), (1024, 2048), 5, 2.0, 8.0, 4.1, 4.0)
    monkeypatch.setattr(segmenter, "estimate_speed", lambda **kwargs: estimate)
    (check,) = doctor.check_speed()
    assert check.status == "ok" and check.detail.startswith("ESTIMATE ~25 frames/s (41 ms a frame)")  # 8 * 4.1 + 2 * 4


def test_the_flops_scale_with_the_input_and_the_target_is_the_official_resize():
    assert target_input_size() == (1024, 2048)
    assert target_input_size((2048, 1024), (256, 512)) == (1024, 2048)  # small frames are enlarged
    ratio = network_flops(T, (256, 512)) / network_flops(T, (128, 256))
    assert 3.8 < ratio < 4.2, ratio


def test_one_probe_raising_does_not_hide_the_others(monkeypatch):
    def broken():
        raise OSError("disk gone")

    monkeypatch.setattr(doctor, "CHECKS", (doctor.check_python, broken))
    checks = doctor.run_checks(benchmark=False)
    assert [c.status for c in checks] == ["ok", "warn"] and "disk gone" in checks[1].detail


def test_a_real_run_on_this_machine_tells_the_truth():
    result = subprocess.run(
        [sys.executable, "-m", "cityscapes_seg_ros.cli.main", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    checks = {c["topic"]: c for c in report["checks"]}
    try:
        importlib.import_module("rclpy")
        importlib.import_module("cityscapes_seg_ros.msg")
        ros_ready = True
    except ImportError:
        ros_ready = False
    assert report["node_can_run"] is ros_ready and result.returncode == (0 if ros_ready else 1), result.stderr
    assert checks["Python"]["status"] == "ok" and checks["torch"]["detail"].startswith(torch.__version__)
    assert checks["GPU"]["status"] == ("ok" if torch.cuda.is_available() else "warn")
    assert checks["ROS 2 rclpy"]["status"] != "missing" if ros_ready else checks["ROS 2 rclpy"]["status"] == "missing"
    assert checks["compiled op png_unfilter"]["status"] == "ok"
    assert sum(t.startswith("weights ") for t in checks) == 9
    assert checks["speed"]["detail"].startswith("ESTIMATE ~") and "scaled" in checks["speed"]["detail"]
    assert Path(sys.executable).name in checks["Python"]["detail"]
