"""The node started by the bag tools and the demo (harness/node_process.NodeProcess) dies with the process that
started it, ``kill -9`` included: no orphan keeps serving the camera topic."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

pytest.importorskip("rclpy")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

ROOT = Path(__file__).resolve().parents[2]
PARAMS_FILE = ROOT / "config" / "cityscapes_seg.yaml"

HARNESS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cityscapes_seg_ros.harness.node_process import NodeProcess, ros_node_command

    params_file, log_path, *parameters = sys.argv[1:]
    node = NodeProcess(ros_node_command("cityscapes_seg_ros.node", Path(params_file), parameters), Path(log_path))
    print(node.process.pid, flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: it no longer serves anything)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def start_harness(tmp_path, parameters):
    log_path = tmp_path / "node.log"
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(PARAMS_FILE), str(log_path), *parameters],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    return harness, int(harness.stdout.readline()), log_path


def kill_and_reap(pid: int) -> None:
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("when", ["serving", "starting"])
def test_kill_9_of_the_process_that_started_the_node_stops_the_node(tmp_path, tiny_model_files, when):
    config, checkpoint = tiny_model_files
    parameters = [
        f"model:={config}",
        f"checkpoint:={checkpoint}",
        "dcnv3_backend:=torch",
        "inference_size:=[64, 32]",
        "image_topics:=[/orphan_test/image_raw]",
    ]
    harness, node_pid, log_path = start_harness(tmp_path, parameters)
    try:
        if when == "serving":
            assert wait_for(lambda: "/orphan_test/image_raw ->" in log_path.read_text(errors="replace"), 120), (
                log_path.read_text(errors="replace")
            )
        assert alive(node_pid)
        harness.kill()  # SIGKILL: no finally block, no atexit in the harness runs
        harness.wait()
        assert wait_for(lambda: not alive(node_pid), 60), f"the node (pid {node_pid}) outlived its parent"
    finally:
        harness.kill()
        kill_and_reap(node_pid)
        harness.stdout.close()


def test_a_child_whose_parent_died_before_the_request_exits_at_once():
    """The race between fork and prctl: a parent already gone means nobody would ever stop the child."""
    code = (
        "import os; from cityscapes_seg_ros.harness.node_process import terminate_with_parent; "
        "preexec = terminate_with_parent(); os.getppid = lambda: 1; preexec(); print('still running')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 128 + signal.SIGTERM and "still running" not in result.stdout, result
