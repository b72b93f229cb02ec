"""The segmentation node as a child process: its output in a log file, stopped on every way out.

"Every way out" includes a ``kill -9`` of this process, which runs no clean-up: on Linux the child asks the
kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so it never lingers as an orphan serving a
later ``evaluate --use-running-node``.

Free of rosbags (the bag tools' ``live.py`` and ``cityscapes-seg demo`` both start the node with it).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .ros import HarnessError

log = logging.getLogger(__name__)


def ros_node_command(module: str, params_file: Optional[Path], parameters: Sequence[str]) -> List[str]:
    """``python -m module --ros-args [--params-file FILE] -p name:=value ...`` with this interpreter."""
    command = [sys.executable, "-m", module, "--ros-args"]
    if params_file is not None:
        command += ["--params-file", str(params_file)]
    for parameter in parameters:
        command += ["-p", parameter]
    return command


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def terminate_with_parent() -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` that has the child sent SIGTERM when this process dies (Linux; None elsewhere), and gives
    it the default SIGINT: stopped with SIGINT, it must not inherit an ignored one (a tool started as a shell's
    background job ignores SIGINT).

    The kernel sends it when the *thread* that started the child exits: start the child from a thread that lives
    as long as the process (the main thread, as the bag tools and the demo do). prctl is looked up here, before
    the fork, so that the child makes only a few system calls between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def request_parent_death_signal() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request: nobody will stop this child
            os._exit(128 + signal.SIGTERM)

    return request_parent_death_signal


class NodeProcess:
    """The node as a subprocess, its output in a log file; stopped with SIGINT as ``ros2 launch`` does, and sent
    SIGTERM by the kernel if this process dies without stopping it (see ``terminate_with_parent``)."""

    def __init__(self, command: List[str], log_path: Path) -> None:
        self.command, self.log_path = command, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = open(log_path, "wb")
        self.process = subprocess.Popen(
            command, stdout=self.log_file, stderr=subprocess.STDOUT, preexec_fn=terminate_with_parent()
        )
        log.info("started the node (pid %d): %s (log: %s)", self.process.pid, " ".join(command), log_path)

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise HarnessError(
                f"the node exited with status {code} before the evaluation finished; "
                f"its log {self.log_path} ends with:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        self.log_file.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_sec: float = 15.0) -> None:
        """SIGINT, then SIGKILL after ``timeout_sec`` or at a second Ctrl-C: the node never outlives this."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                self.process.wait(timeout=timeout_sec)
        except subprocess.TimeoutExpired:
            log.warning("the node did not stop within %.0f s of SIGINT; killing it", timeout_sec)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.log_file.close()
