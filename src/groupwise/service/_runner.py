"""Running the service's jobs: one `groupwise run-job` process per active job.

A job's launch runs in a process of its own, so a launch that crashes (or a task that
kills its process) fails that job with its reason and never takes the server down. The
runner polls the jobs table: an active job that no process of this server runs is claimed
and started; a process that ended settles its job. Job processes get SIGTERM when the
server dies (Linux: ``PR_SET_PDEATHSIG``), which a launch handles as Ctrl-C: its running
trials are recorded as interrupted and retried when the next server resumes the job. So a
restarted server continues every queued and running study, nothing lost or counted twice.

One server per database: a second server on the same database would run the same jobs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field

from groupwise.store import ACTIVE, Jobs, mask

__all__ = ["Runner"]

log = logging.getLogger("groupwise.service")
RUNNER = f"{socket.gethostname()}:{os.getpid()}"
INTERRUPTED = (130, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGTERM)


@dataclass
class _Process:
    proc: subprocess.Popen[str]
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    reader: threading.Thread | None = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()  # its own group: a Ctrl-C at the server's terminal is the server's alone


class Runner:
    """Starts and settles the jobs of one database."""

    def __init__(
        self, jobs: Jobs, storage: str, ray_address: str | None, poll_s: float = 1.0
    ) -> None:
        self.jobs, self.storage, self.ray_address = jobs, storage, ray_address
        self.poll_s = poll_s
        self.running: dict[str, _Process] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="groupwise-jobs", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look at the jobs now (a study was just submitted or stopped)."""
        self._wake.set()

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the loop and interrupt the launches (their running trials are recorded as
        interrupted; the next server resumes the jobs)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        with self._lock:
            for running in self.running.values():
                _signal(running.proc, signal.SIGINT)
            for running in self.running.values():
                try:
                    running.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    _signal(running.proc, signal.SIGKILL)
                    running.proc.wait()
            self.running.clear()

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a database hiccup must not end the loop: try again next poll
                log.exception("groupwise service: checking the jobs failed; trying again")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def step(self) -> None:
        with self._lock:
            for study, running in list(self.running.items()):
                if running.proc.poll() is not None:
                    self._settle(study, running)
            for job in self.jobs.all():
                if self._stop.is_set():
                    return
                if job.state in ACTIVE and job.study not in self.running:
                    if job.state == "stopping":  # its launch ended with the last server
                        self.jobs.end(job.study, "stopped", "stopped on request")
                    elif self.jobs.claim(job.study, RUNNER):
                        self.running[job.study] = self._spawn(job.study)

    def _spawn(self, study: str) -> _Process:
        command = [sys.executable, "-m", "groupwise", "run-job", study, "--storage", self.storage]
        if self.ray_address:
            command += ["--ray-address", self.ray_address]
        # The API's tokens are the server's alone: a job's launch (and its task) never sees them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPWISE_API_")}
        proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            preexec_fn=_die_with_parent,
        )
        running = _Process(proc)
        running.reader = threading.Thread(target=_drain, args=(proc, running.tail), daemon=True)
        running.reader.start()
        log.info(
            "groupwise service: started job %s (pid %d) on %s", study, proc.pid, mask(self.storage)
        )
        return running

    def _settle(self, study: str, running: _Process) -> None:
        del self.running[study]
        if running.reader is not None:
            running.reader.join(5)
        code = running.proc.returncode
        job = self.jobs.get(study)
        if job is None or job.state not in ACTIVE:
            return
        last = next((line for line in reversed(running.tail) if line.strip()), "")
        if code == 0:
            if job.state == "stopping":
                self.jobs.end(study, "stopped", "stopped on request")
            elif job.started_at is not None and job.submitted_at > job.started_at:
                self.jobs.requeue(study)  # resubmitted with a new budget while it ran
            else:
                self.jobs.end(study, "finished")
        elif code in INTERRUPTED and self._stop.is_set():
            return  # the server is stopping: the job stays active, the next server resumes it
        else:
            reason = last.removeprefix("error: ") or f"the launch exited with code {code}"
            if code != 2:
                reason = f"the launch exited with code {code}: {reason}"
            self.jobs.end(study, "failed", reason[:2000])
        log.info("groupwise service: job %s ended (exit %s)", study, code)


def _drain(proc: subprocess.Popen[str], tail: deque[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        tail.append(line.rstrip())


def _signal(proc: subprocess.Popen[str], sent: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sent)
