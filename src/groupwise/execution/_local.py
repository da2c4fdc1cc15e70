"""A local worker: the :class:`~groupwise.execution._worker.Worker` in a process forked from
the driver, answering over a pipe. It trains a launch's trials until Ray's workers take over,
or the whole launch when it is short (:mod:`groupwise.execution._bridge`): forked after the
driver has imported torch and made the plan, it starts at once, with nothing to import and no
actor to schedule.

It keeps a Ray worker's fault model, being a process of its own: a trial that hangs is
killed with it, and one that kills it is :class:`Lost`. It trains with one thread: a process
forked after torch has run a parallel region deadlocks in its first one (GNU OpenMP's pool is
not carried across ``fork``), and one thread never enters one.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from typing import Any

from groupwise.execution._protocol import Lost, Placement, WorkerSettings

__all__ = ["LocalWorker", "wait_any"]

_PR_SET_PDEATHSIG = 1


class LocalWorker:
    """One forked worker process. ``call`` sends it a method and its arguments; ``answer``
    returns what it sent back (a :class:`Lost` when the process died)."""

    def __init__(self, settings: WorkerSettings) -> None:
        context = multiprocessing.get_context("fork")
        self.conn, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(settings, theirs), name="groupwise-local-worker", daemon=True
        )
        self.process.start()
        theirs.close()
        self.starting = True  # until its placement has come back
        self.calling = True  # a call is out (the first: its placement, sent unasked)
        self.since = time.perf_counter()
        self.placement: Placement | None = None

    def call(self, method: str, *args: Any) -> None:
        with contextlib.suppress(OSError):  # it died: its answer is the pipe's end (Lost)
            self.conn.send((method, args))
        self.calling, self.since = True, time.perf_counter()

    def ready(self) -> bool:
        """Whether its answer (or its death) has come."""
        return self.calling and self.conn.poll()

    def answer(self) -> Any:
        """Its answer to the call out; :class:`Lost` if the process died under it."""
        self.calling = False
        try:
            answer = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            return Lost(f"worker lost: the local worker exited (code {self.process.exitcode})")
        if isinstance(answer, BaseException):  # it could not start: its own error
            return Lost(f"worker lost: the local worker could not start ({answer!r:.200})")
        if self.starting:
            self.starting, self.placement = False, answer
        return answer

    def yield_cpu(self) -> None:
        """Run at the lowest priority from now on (any process may lower its children's)."""
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, self.process.pid or 0, 19)

    def kill(self) -> None:
        """Stop the process, mid-epoch if need be."""
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


def wait_any(workers: list[LocalWorker], timeout_s: float) -> None:
    """Block until one of ``workers`` (those with a call out) has answered, or the timeout."""
    conns = [w.conn for w in workers if w.calling]
    if conns:
        multiprocessing.connection.wait(conns, timeout=max(0.0, timeout_s))
    else:
        time.sleep(max(0.0, timeout_s))


def _serve(settings: WorkerSettings, conn: Any) -> None:
    """The child: make the Worker (its task's data loaded), say where it trains, then answer
    each call until the driver closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _die_with_parent()
    _quiet()
    gc.freeze()  # what the driver left for the collector (a database pool) is not ours to close
    from groupwise.execution._worker import Worker

    try:
        worker = Worker(settings)
        conn.send(worker.placement())
    except Exception as e:
        conn.send(e)
        return
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(getattr(worker, method)(*args))


def _die_with_parent() -> None:
    """The child is killed when the driver dies (Linux), not left training on its own."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _quiet() -> None:
    """What the trials print stays out of the launch's terminal, as a Ray worker's does (the
    pool starts Ray with ``log_to_driver=False``): the progress line stays whole."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
