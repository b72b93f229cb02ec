"""Interrupts and clean-up: SIGTERM handled as Ctrl-C, and short steps that an interrupt must not split.

Clean-up (a node stopped, a half-written bag removed) runs from ``finally`` blocks; that needs SIGTERM to raise
as Ctrl-C does, and a resource to be bound to its name before an interrupt can land (a node process started
but not yet recorded would outlive the tool).
"""

from __future__ import annotations

import faulthandler
import signal
import threading
from contextlib import contextmanager
from typing import Iterator, List


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt: the same clean-up, then exit status 143 (128 + 15,
    the convention for a SIGTERM) instead of Ctrl-C's 130."""


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def stacks_on_sigusr1() -> None:
    """From now on ``kill -USR1 PID`` writes every thread's Python stack to stderr and the process goes on: what a
    process that seems hung is waiting in."""
    if hasattr(signal, "SIGUSR1") and in_main_thread():
        try:
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        except (RuntimeError, ValueError, OSError, AttributeError):  # stderr is None or not a file (captured)
            pass


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Meanwhile SIGTERM raises Terminated, a KeyboardInterrupt (in the main thread; elsewhere nothing changes)."""
    if not in_main_thread():
        yield
        return

    def interrupt(signum, frame) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C or SIGTERM arriving meanwhile raises KeyboardInterrupt (Terminated) at the end of the block, not inside.

    For a step such as "start a process and keep its handle". Signal handlers are not inherited by a program a
    child process executes, so children started meanwhile get the default ones.
    """
    if not in_main_thread():
        yield
        return
    received: List[int] = []

    def remember(signum, frame) -> None:
        received.append(signum)

    # A signal this process ignores (SIGINT in a shell's background job) stays ignored here too.
    deferred = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, remember) for signum in deferred}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if received:
            raise Terminated if received[0] == signal.SIGTERM else KeyboardInterrupt
