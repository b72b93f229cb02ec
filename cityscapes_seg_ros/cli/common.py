"""What the three command lines share: logging set-up, small argument types, and turning errors into exit 2."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

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

    Checkpoint, bag and dataset errors all derive from ValueError or RuntimeError.
    """
    try:
        return command()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
