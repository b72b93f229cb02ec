"""What the three command lines share: logging set-up, small argument types, and turning errors into exit 2."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
from typing import Callable, List, Optional

from ..harness.interrupts import Terminated, stacks_on_sigusr1

PACKAGE_LOGGER = "cityscapes_seg_ros"


def configure_logging(verbose: bool) -> None:
    """INFO (DEBUG with -v) for the package's one logger tree, ``cityscapes_seg_ros.*``; other libraries WARNING."""
    logging.basicConfig(format="%(levelname)s %(message)s")
    logging.getLogger(PACKAGE_LOGGER).setLevel(logging.DEBUG if verbose else logging.INFO)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def run_command(prog: str, command: Callable[[], int]) -> int:
    """Run ``command``; a problem the user can fix (bad input, missing checkpoint, no CUDA) is one line, exit 2.

    Checkpoint, bag and dataset errors all derive from ValueError or RuntimeError. Ctrl-C exits 130 and SIGTERM
    (where the command handles it: ``harness.interrupts.terminate_as_interrupt``) 143, the shells' conventions.
    ``kill -USR1`` prints the stacks of its threads (``harness.interrupts.stacks_on_sigusr1``).
    """
    stacks_on_sigusr1()
    try:
        return command()
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


def survives_closed_stdout(main: Callable[[Optional[List[str]]], int]) -> Callable[[Optional[List[str]]], int]:
    """``main`` whose output piped into a reader that stops early (``| head``) ends quietly, as a program killed by
    SIGPIPE does (status 141), instead of with a BrokenPipeError traceback."""

    @functools.wraps(main)
    def quiet_main(argv: Optional[List[str]] = None) -> int:
        try:
            code = main(argv)
            sys.stdout.flush()  # here, not at interpreter exit, where the error would be printed
            return code
        except BrokenPipeError:
            # Python flushes stdout once more at exit: point it at /dev/null so that flush has nowhere to fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE

    return quiet_main
