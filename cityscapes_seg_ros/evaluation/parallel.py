"""Scoring files in several processes: the calling process scores too; helper processes join only when they pay.

A helper is a fresh ``python -c`` running ``score_helper.serve``: it imports the scoring module and nothing
else (not torch, not the caller's ``__main__``), takes one file pair at a time on its stdin, answers each with
that image's ``Accumulator`` on its stdout (length-prefixed pickles), and exits when its stdin closes. Nothing
is forked from the caller, so threads there (rclpy, torch) cannot deadlock a child, and no forkserver or
resource tracker is left running. Work is handed out one image at a time, so a helper that is slow to start
only means the caller scores more images itself: the job is never much slower than scoring alone.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Deque, List, Optional

import cityscapes_seg_ros

log = logging.getLogger(__name__)

# A helper takes ~0.2 s of wall and CPU time to start (interpreter, numpy, OpenCV, the PNG decoder; 2-core
# Xeon). With a core to itself it then halves the work left; on a machine whose other cores are busy its
# start is lost time. One helper per second of work left keeps that loss small next to the gain.
WORK_SECONDS_PER_HELPER = 1.0
IN_FLIGHT = 2  # pairs queued per helper: the next is at hand when one is done, and the tail stays short
_LENGTH = struct.Struct(">I")
_HELPER_COMMAND = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the caller stops helpers\n"
    "if sys.path[:1] == ['']: del sys.path[0]  # not the caller's working directory\n"
    "from cityscapes_seg_ros.evaluation.score_helper import serve\n"
    "serve()\n"
)


def helpers_worth_starting(remaining: int, seconds_per_image: float, workers: int) -> int:
    """Helper processes (besides the caller) that shorten a job of ``remaining`` images, each taking about
    ``seconds_per_image`` here; ``workers`` processes at most, the caller included. None where pipes cannot be
    waited on with ``select`` (not POSIX)."""
    if workers <= 1 or remaining < 2 or os.name != "posix":
        return 0
    pays_for = int(remaining * seconds_per_image / WORK_SECONDS_PER_HELPER)
    return max(0, min(workers - 1, pays_for, remaining - 1))


class HelperError(RuntimeError):
    """A helper process stopped without an answer."""


class Helper:
    """One helper process and its two pipes; ``in_flight`` pairs sent and not yet answered."""

    def __init__(self) -> None:
        package_parent = str(Path(cityscapes_seg_ros.__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HELPER_COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env
        )
        self.ready = False
        self.in_flight = 0

    def fileno(self) -> int:
        return self.process.stdout.fileno()

    def send(self, message: Any) -> None:
        try:
            write_frame(self.process.stdin, message)
        except (BrokenPipeError, OSError):
            raise self._stopped() from None
        self.in_flight += 1

    def receive(self) -> Any:
        message = read_frame(self.process.stdout)
        if message is None:
            raise self._stopped()
        return message

    def _stopped(self) -> HelperError:
        status = self.process.wait()
        return HelperError(f"a scoring helper process stopped unexpectedly (exit status {status})")

    def stop(self, wait: bool) -> None:
        """Close its stdin (it exits once its work is done) or, unless ``wait``, kill it at once."""
        if not wait:
            self.process.kill()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def reap(self) -> None:
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def share_work(
    pairs: Deque, score: Callable[[Any], Any], merge: Callable[[Any], None], helpers: int, done: Callable[[], None]
) -> None:
    """Score ``pairs`` here and in ``helpers`` helper processes; ``merge`` each result, ``done`` after each.

    The first error (of any process) is raised here, with its message; every helper has ended on return.
    """
    started: List[Helper] = []
    finished = False
    try:
        started.extend(Helper() for _ in range(helpers))
        log.debug("started %d scoring helper processes", helpers)
        while pairs or any(h.in_flight for h in started):
            _collect(started, merge, done, wait=not pairs)
            for helper in started:
                while helper.ready and pairs and helper.in_flight < IN_FLIGHT:
                    helper.send(tuple(pairs.popleft()))
            if pairs:
                merge(score(pairs.popleft()))
                done()
        finished = True
    finally:
        for helper in started:  # one not ready yet has nothing to do: killed, not waited for
            helper.stop(wait=finished and helper.ready)
        for helper in started:
            helper.reap()


def _collect(helpers: List[Helper], merge: Callable[[Any], None], done: Callable[[], None], wait: bool) -> None:
    """Take every answer the helpers have ready; block for one when ``wait``."""
    readable, _, _ = select.select(helpers, [], [], None if wait else 0)
    for helper in readable:
        kind, payload = helper.receive()
        if kind == "ready":
            helper.ready = True
        elif kind == "result":
            helper.in_flight -= 1
            merge(payload)
            done()
        else:  # a bad file: the same error as without helpers
            raise ValueError(payload)


def write_frame(pipe, message: Any) -> None:
    """One message as a length-prefixed pickle, written whole."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[pipe.write(view) :]


def read_frame(pipe) -> Optional[Any]:
    """The next message, or None at the end of the stream. Only for our own processes' messages (pickle)."""
    header = _read_exactly(pipe, _LENGTH.size)
    if header is None:
        return None
    data = _read_exactly(pipe, _LENGTH.unpack(header)[0])
    return None if data is None else pickle.loads(data)


def _read_exactly(pipe, size: int) -> Optional[bytes]:
    chunks: List[bytes] = []
    while size:
        chunk = pipe.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
