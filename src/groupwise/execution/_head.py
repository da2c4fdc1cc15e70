"""LocalHead: a Ray head on this machine that a long-lived process (the service) starts once,
so the launches it runs share one cluster's workers.

Left to itself, each `groupwise launch` starts a private Ray sized to the whole machine; two
jobs at once would then each run their workers on the same cores, and each pay Ray's start-up.
One head shares them: a job whose workers do not fit waits for the CPUs another job frees.

The head is `ray start --head --block` run by this very Python (so its workers import
groupwise and the user's tasks), in a process group of its own that dies with its parent
(Linux: ``PR_SET_PDEATHSIG``). --block makes that process own Ray's processes: terminating it
stops this cluster and leaves any other Ray on the machine alone. Nothing here imports Ray.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from groupwise.errors import StudyError

__all__ = ["AUTH_ENV", "LocalHead", "own_child"]

READY = "Ray runtime started"
AUTH_ENV = {"RAY_AUTH_MODE": "token"}  # `ray start` clusters authenticate their drivers


def _own_group_dying_with_parent() -> None:  # pragma: no cover - runs in the child
    """A child's ``preexec_fn``: SIGTERM when the thread that started it ends (Linux), and a
    process group of its own (a Ctrl-C at the parent's terminal is the parent's alone)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()


def own_child(
    command: list[str], env: Mapping[str, str], stdout: int, stderr: int
) -> subprocess.Popen[str]:
    """A child process that dies with the thread starting it, in a group of its own, no
    stdin, its piped output read as text."""
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=True,
        errors="replace",
        preexec_fn=_own_group_dying_with_parent,
    )


class LocalHead:
    """A one-node Ray cluster on loopback, for as long as this object is open."""

    def __init__(self, cpus: int | None = None) -> None:
        self.cpus = cpus
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.tail: deque[str] = deque(maxlen=30)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 300.0) -> str:
        """Start the head and wait until Ray says it runs; its address. StudyError (with
        Ray's last words) if it exits first or takes longer than ``timeout_s``."""
        self.port = _free_port()
        command = [
            sys.executable,
            *("-m", "ray.scripts.scripts", "start", "--head", "--block"),
            f"--port={self.port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
        if self.cpus is not None:
            command.append(f"--num-cpus={self.cpus}")
        self.proc = own_child(command, os.environ | AUTH_ENV, subprocess.PIPE, subprocess.STDOUT)
        ready = threading.Event()
        threading.Thread(target=self._read, args=(self.proc, ready), daemon=True).start()
        if not ready.wait(timeout_s) or not self.alive():
            last = next((line for line in reversed(self.tail) if line.strip()), "no output")
            self.close()
            raise StudyError(
                f"could not start a local Ray head on port {self.port}: {last}; start one with "
                "`ray start --head --port=PORT` and pass --ray-address 127.0.0.1:PORT instead"
            )
        return self.address

    def _read(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        for line in proc.stdout or ():  # read to the end: a full pipe would block Ray
            self.tail.append(line.rstrip())
            if READY in line:
                ready.set()
        ready.set()  # it exited: start() looks at why

    def close(self, timeout_s: float = 120.0) -> None:
        """Stop the cluster: SIGTERM (Ray stops its processes), SIGKILL to the group if it
        takes longer than ``timeout_s``. Also forgets the address `ray start` recorded for
        bare ``ray.init()`` calls, which would otherwise point at nothing."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        record = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        with contextlib.suppress(OSError):
            if record.read_text().strip().endswith(f":{self.port}"):
                record.unlink()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
