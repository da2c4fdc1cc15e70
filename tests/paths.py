"""The environment a test's subprocess runs in: the tests folder (the fault tasks, user tasks)
ahead of whatever PYTHONPATH the suite itself runs with, so that a run against a copy of the
sources (PYTHONPATH=copy/src) tests that copy in its subprocesses too."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def pythonpath() -> str:
    return os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": pythonpath(), **extra}


def default_sigint() -> None:
    """(A ``preexec_fn``.) A suite started in the background (``cmd &``) ignores SIGINT and
    its children inherit that; a launch under test must take Ctrl-C as a terminal sends it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A TCP port nothing listens on now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
