"""Running the service's jobs: one `groupwise run-job` process per active job.

A job's launch runs in a process of its own, so a launch that crashes (or a task that
kills its process) fails that job with its reason and never takes the server down. The
runner polls the jobs table: an active job that no process of this server runs is claimed
and started; a process that ended settles its job. Job processes get SIGTERM when the
server dies (Linux: ``PR_SET_PDEATHSIG``), which a launch handles as Ctrl-C: its running
trials are recorded as interrupted and retried when the next server resumes the job. So a
restarted server continues every queued and running study, nothing lost or counted twice.

Without a cluster address the jobs share one Ray head the runner starts on this machine
when the first job needs it (:class:`~groupwise.execution.LocalHead`), and stops last.

One server per database: a second server on the same database would run the same jobs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field

from groupwise.errors import StudyError
from groupwise.execution import AUTH_ENV, LocalHead, own_child
from groupwise.store import ACTIVE, Job, Jobs, mask

__all__ = ["Runner"]

log = logging.getLogger("groupwise.service")
RUNNER = f"{socket.gethostname()}:{os.getpid()}"
INTERRUPTED = (130, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGTERM)


@dataclass
class _Process:
    proc: subprocess.Popen[str]
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    reader: threading.Thread | None = None


class Runner:
    """Starts and settles the jobs of one database."""

    def __init__(
        self, jobs: Jobs, storage: str, ray_address: str | None, poll_s: float = 1.0
    ) -> None:
        self.jobs, self.storage, self.ray_address = jobs, storage, ray_address
        self.poll_s = poll_s
        self.running: dict[str, _Process] = {}
        self.head: LocalHead | None = None  # started for the first job, without ray_address
        self.grace_s = 60.0  # how long a launch may take to stop before it is killed
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="groupwise-jobs", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        active = [job.study for job in self.jobs.all() if job.state in ACTIVE]
        log.info(
            "groupwise service: running the jobs of %s (%d active%s)",
            mask(self.storage),
            len(active),
            f": {', '.join(active)}" if active else "",
        )
        self._thread.start()

    def wake(self) -> None:
        """Look at the jobs now (a study was just submitted or stopped)."""
        self._wake.set()

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the loop and interrupt the launches (their running trials are recorded as
        interrupted; the next server resumes the jobs), then the local Ray head."""
        self.grace_s = timeout_s
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        else:
            self._shutdown()

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.step()
                except Exception:  # a database hiccup must not end the loop: try next poll
                    log.exception("groupwise service: checking the jobs failed; trying again")
                self._wake.wait(self.poll_s)
                self._wake.clear()
        finally:
            # Here, not in close(): the launches and the head were started by this thread, and
            # the kernel sends them SIGTERM when it ends (PR_SET_PDEATHSIG), so it ends last.
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            if self.running:
                log.info(
                    "groupwise service: stopping; interrupting the running jobs (%s): their "
                    "running trials are retried when the next server resumes them",
                    ", ".join(self.running),
                )
            for running in self.running.values():
                _signal(running.proc, signal.SIGINT)
            for running in self.running.values():
                try:
                    running.proc.wait(self.grace_s)
                except subprocess.TimeoutExpired:
                    _signal(running.proc, signal.SIGKILL)
                    running.proc.wait()
            self.running.clear()
            if self.head is not None:
                self.head.close()  # after the launches: they stop their workers through it
                self.head = None
            log.info("groupwise service: stopped")

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
                        log.info("groupwise service: job %s stopped on request", job.study)
                    elif self.jobs.claim(job.study, RUNNER):
                        self._run(job)

    def _run(self, job: Job) -> None:
        try:
            address, env = self._cluster()
        except StudyError as e:  # no Ray to run it on: the job fails with why
            self.jobs.end(job.study, "failed", str(e)[:2000])
            log.info("groupwise service: job %s failed: %s", job.study, e)
            return
        self.running[job.study] = running = self._spawn(job.study, address, env)
        how = _how_it_starts(job)
        log.info("groupwise service: job %s %s (pid %d)", job.study, how, running.proc.pid)

    def _cluster(self) -> tuple[str, dict[str, str]]:
        """The Ray address a job joins, and the environment it needs to: the one given, or
        this server's own head (started now if it is not running)."""
        if self.ray_address:
            return self.ray_address, {}
        if self.head is None or not self.head.alive():
            if self.head is not None:
                log.warning("groupwise service: the local Ray head died; starting another")
            self.head = LocalHead()
            self.head.start()
            log.info("groupwise service: jobs share a local Ray head at %s", self.head.address)
        return self.head.address, AUTH_ENV

    def _spawn(self, study: str, address: str, extra_env: dict[str, str]) -> _Process:
        command = [sys.executable, "-m", "groupwise", "run-job", study, "--storage", self.storage]
        command += ["--ray-address", address]
        # The API's tokens are the server's alone: a job's launch (and its task) never sees them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPWISE_API_")}
        env |= extra_env
        proc = own_child(command, env, subprocess.DEVNULL, subprocess.PIPE)
        running = _Process(proc)
        running.reader = threading.Thread(target=_drain, args=(proc, running.tail), daemon=True)
        running.reader.start()
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
                log.info("groupwise service: job %s stopped on request", study)
            elif _resubmitted_while_running(job):
                self.jobs.requeue(study)  # resubmitted with a new budget while it ran
                log.info("groupwise service: job %s queued again for its new budget", study)
            else:
                self.jobs.end(study, "finished")
                log.info("groupwise service: job %s finished (its budget spent)", study)
        elif code in INTERRUPTED and self._stop.is_set():
            self.jobs.pause(study)  # the job stays active: the next server resumes it
            log.info("groupwise service: job %s interrupted with the server", study)
        else:
            reason = last.removeprefix("error: ") or f"the launch exited with code {code}"
            if code != 2:
                reason = f"the launch exited with code {code}: {reason}"
            self.jobs.end(study, "failed", reason[:2000])
            log.info("groupwise service: job %s failed: %s", study, reason[:500])


def _how_it_starts(job: Job) -> str:
    """Says whether a claimed job starts for the first time or resumes, and why."""
    if job.started_at is None:
        return "started"
    if job.state in ("running", "stopping"):
        return "resumed (its server stopped while it ran)"
    return "resumed (submitted again)"


def _resubmitted_while_running(job: Job) -> bool:
    since = job.run_started_at
    return bool(job.resubmitted_at and since and job.resubmitted_at > since)


def _drain(proc: subprocess.Popen[str], tail: deque[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        tail.append(line.rstrip())


def _signal(proc: subprocess.Popen[str], sent: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sent)
