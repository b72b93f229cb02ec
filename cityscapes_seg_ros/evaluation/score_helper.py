"""The main loop of a scoring helper process (started by ``parallel.Helper``): file pairs in, counts out."""

from __future__ import annotations

import os
import sys

import cv2

from .parallel import read_frame, write_frame
from .scoring import ScorePair, accumulate_pair


def serve() -> None:
    """One ScorePair tuple in on stdin, ("result", Accumulator) or ("error", message) out on stdout, until
    stdin ends."""
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed goes to stderr, not into the answers
    requests = os.fdopen(0, "rb", buffering=0)
    cv2.setNumThreads(1)  # the processes are the parallelism
    write_frame(answers, ("ready", None))
    while True:
        pair = read_frame(requests)
        if pair is None:  # the caller is done: exit without the interpreter's slow teardown
            sys.stderr.flush()
            os._exit(0)
        try:
            answer = ("result", accumulate_pair(ScorePair(*pair)))
        except ValueError as exc:  # a bad file: the caller raises it; anything else ends this process
            answer = ("error", str(exc))
        write_frame(answers, answer)
