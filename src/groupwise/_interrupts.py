"""Ctrl-C and SIGTERM that stop a launch only where it can stop cleanly.

Python raises KeyboardInterrupt wherever the main thread happens to be. Inside a database
call that can abandon a connection mid-transaction, still holding SQLite's write lock, and the
launch's own last act ("record the running trials as interrupted") then waits on that lock
until its outage patience runs out. So while :func:`deferring` is active (a launch's driver),
a signal only notes itself; it is raised where nothing is half-written: inside
:func:`interruptible` sections (waiting on workers, sleeping out a database outage), or at
the next :func:`check` (the top of the driver's loop).

Only the main thread takes signals, so elsewhere (a launch run from a library caller's
thread) all of this is a no-op and the caller's own handling stands.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["check", "deferring", "interruptible"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; what `kill` and container runtimes send


class _State:
    active = False  # handlers installed by deferring()
    waiting = False  # the main thread is inside interruptible()
    pending: int | None = None  # a signal that arrived outside it


_state = _State()


def _main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.waiting:
        _state.waiting = False  # once: cleanup after it runs deferred again
        raise KeyboardInterrupt(f"signal {signum}")
    _state.pending = signum


@contextmanager
def deferring() -> Iterator[None]:
    """SIGINT and SIGTERM become a KeyboardInterrupt at the next safe point, for the
    duration; the handlers before are put back after."""
    if not _main() or _state.active:
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    _state.active, _state.pending, _state.waiting = True, None, False
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.active, _state.pending, _state.waiting = False, None, False


def check() -> None:
    """Raise the KeyboardInterrupt a signal asked for, if one came (a safe point)."""
    if _main() and _state.pending is not None:
        signum, _state.pending = _state.pending, None
        raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def interruptible() -> Iterator[None]:
    """A section that writes nothing (a wait, a sleep): a signal interrupts it at once."""
    check()
    if not (_main() and _state.active):
        yield
        return
    _state.waiting = True
    try:
        yield
    finally:
        _state.waiting = False
