"""The worker pool: Ray actors, one per slot. The only module in groupwise that imports Ray.

The pool starts a private local Ray instance (or joins ``--ray-address``), checks the cluster
can hold the workers, and runs one :class:`~groupwise.execution._worker.Worker` actor per
slot. A slot is *starting* until its actor has answered once (imports done, data loaded), and
only then free: a trial's clock never counts a worker's start-up. The driver submits a
config to a free slot and waits; each answer comes back as a typed reply, and a worker that
died comes back as :class:`Lost`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from groupwise.errors import StudyError
from groupwise.execution._address import unreachable
from groupwise.execution._protocol import Lost, Placement, Reply, WorkerSettings
from groupwise.execution._worker import Worker

__all__ = ["WorkerPool"]

# A worker that dies this many times in a row before answering once will not start at all
# (its task cannot be imported there, say): stop, rather than replace it forever.
START_FAILURES = 3


class _RayWorker(Worker):
    """The Worker as Ray runs it: it reads the GPU ids Ray assigned to it, and its node."""

    def __init__(self, settings: WorkerSettings) -> None:
        context = ray.get_runtime_context()
        gpu_ids = tuple(str(i) for i in context.get_accelerator_ids().get("GPU", []))
        super().__init__(settings, gpu_ids=gpu_ids, node=context.get_node_id())


@dataclass
class _Slot:
    actor: Any
    call: ray.ObjectRef[Any] | None = None  # its step() or, while starting, its placement()
    starting: bool = True
    since: float = 0.0  # when the current step was submitted (perf_counter)
    placement: Placement | None = None


class WorkerPool:
    """``count`` worker actors with ``cpus`` and ``gpus`` each, on a local or joined cluster."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        count: int,
        cpus: float,
        gpus: float,
        ray_address: str | None,
    ) -> None:
        self.settings = settings
        self.count, self.cpus, self.gpus = count, cpus, gpus
        self.ray_address = ray_address
        self.slots: list[_Slot] = []
        self._owns_ray = False
        self._start_failures = 0

    # -- life -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Join or start Ray, check it can hold the workers, start them (not waiting)."""
        if not ray.is_initialized():
            self._init_ray()
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        need_cpu, need_gpu = self.count * self.cpus, self.count * self.gpus
        if need_cpu > resources.get("CPU", 0) or need_gpu > resources.get("GPU", 0):
            raise StudyError(
                f"workers: {self.count} x ({self.cpus} CPU, {self.gpus} GPU) needs "
                f"{need_cpu:g} CPU and {need_gpu:g} GPU; the Ray cluster has "
                f"{resources.get('CPU', 0):g} CPU and {resources.get('GPU', 0):g} GPU. Lower "
                "workers.count (or --workers) or the resources per trial"
            )
        self.slots = [self._new_slot() for _ in range(self.count)]

    def _init_ray(self) -> None:
        _check_reachable(self.ray_address)
        private = self.ray_address in (None, "", "local")
        if private:
            # The private instance keeps Ray's token authentication, without Ray announcing
            # it on every launch (a joined cluster's notice still shows).
            logging.getLogger(_RAY_AUTH_LOGGER).addFilter(_quiet_token_notice)
        # Started from a thread (a fast start's), Ray says it leaves SIGTERM alone: the
        # launch handles it (groupwise._interrupts), so that is no news to the user.
        logging.getLogger(_RAY_WORKER_LOGGER).addFilter(_quiet_sigterm_notice)
        try:
            # "local" always starts a private instance: a bare ray.init() would join any
            # cluster a `ray start` recorded on this machine, even one that has died since.
            ray.init(
                address=self.ray_address or "local",
                include_dashboard=False,
                configure_logging=False,
                log_to_driver=False,
                runtime_env=_runtime_env(),
            )
        except (ConnectionError, RuntimeError) as e:
            raise StudyError(
                f"could not join the Ray cluster at {self.ray_address!r}: "
                f"{str(e).splitlines()[0]}. Clusters started with `ray start` use token "
                "authentication: set RAY_AUTH_MODE=token and make the cluster's token "
                "available (~/.ray/auth_token or RAY_AUTH_TOKEN)"
            ) from e
        self._owns_ray = True
        if private:
            _private_token()

    def _new_slot(self) -> _Slot:
        actor_class = ray.remote(_RayWorker).options(num_cpus=self.cpus, num_gpus=self.gpus)
        actor: Any = actor_class.remote(self.settings)
        return _Slot(actor, call=actor.placement.remote())

    def close(self) -> None:
        """Stop every worker; shut Ray down if this pool started it."""
        for slot in self.slots:
            ray.kill(slot.actor)
        self.slots = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def replace(self, index: int) -> None:
        """Kill a slot's worker (mid-epoch if need be) and start a new one in its place."""
        ray.kill(self.slots[index].actor, no_restart=True)
        self.slots[index] = self._new_slot()

    # -- work -----------------------------------------------------------------------------------
    def free(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if not s.starting and s.call is None]

    def busy(self) -> dict[int, float]:
        """Slots training a trial, with when their current call was submitted."""
        return {i: s.since for i, s in enumerate(self.slots) if not s.starting and s.call}

    def submit(self, index: int, config: dict[str, Any] | None, seed: int | None = None) -> None:
        """Start a trial on a free slot (``config``, trained from ``seed``; None: the study's),
        or train its next epoch (None)."""
        slot = self.slots[index]
        slot.call = slot.actor.step.remote(config, seed)
        slot.since = time.perf_counter()

    @property
    def capacity(self) -> int:
        """Trials that can train at once: one per worker."""
        return self.count

    def companions(self, index: int) -> int:
        """Trials that could join the batch the trial just started on ``index`` leads: none,
        one trial per worker."""
        return 0

    def release(self, index: int) -> None:
        """The driver has ended the slot's trial (nothing to do: the slot is free already)."""

    def submit_batch(
        self, index: int, starts: list[tuple[int, dict[str, Any], int | None]], drops: list[int]
    ) -> None:
        """``workers.batch``: start a batch of candidates on a free slot, or train the next
        epoch of its live ones (``Worker.step_batch``)."""
        slot = self.slots[index]
        slot.call = slot.actor.step_batch.remote(starts, drops)
        slot.since = time.perf_counter()

    def wait(self, timeout_s: float) -> tuple[int, Reply] | None:
        """The next reply of a training slot, or None (timeout, or a worker became free)."""
        return self.wait_raw(timeout_s)  # one trial per worker: its answer is a Reply

    def wait_raw(self, timeout_s: float) -> tuple[int, Any] | None:
        """The next answer of a training slot as its worker gave it (a batch's: a list of
        replies), or None (timeout, or a worker became free)."""
        calls = {s.call: i for i, s in enumerate(self.slots) if s.call is not None}
        if not calls:
            time.sleep(max(0.0, timeout_s))
            return None
        ready, _ = ray.wait(list(calls), num_returns=1, timeout=max(0.0, timeout_s))
        if not ready:
            return None
        index = calls[ready[0]]
        slot = self.slots[index]
        slot.call = None
        try:
            answer = ray.get(ready[0])
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
            return self._died(index, e)
        if slot.starting:
            slot.starting, slot.placement = False, answer
            self._start_failures = 0
            return None
        return index, answer

    def _died(self, index: int, error: BaseException) -> tuple[int, Reply] | None:
        was_starting = self.slots[index].starting
        self.slots[index] = self._new_slot()
        if not was_starting:
            return index, Lost(f"worker lost: {type(error).__name__}{_cause(error)}")
        self._start_failures += 1
        if self._start_failures >= START_FAILURES:
            raise StudyError(
                f"the workers die before they start ({self._start_failures} in a row): "
                f"{type(error).__name__}{_cause(error)}; check that the task imports on the "
                "cluster's nodes (PYTHONPATH, installed packages)"
            ) from error
        return None

    def device_memory(self) -> list[int | None]:
        """Each started worker's device memory in bytes (None on a CPU)."""
        return [s.placement.device_memory_bytes for s in self.slots if s.placement is not None]

    def wait_started(self) -> None:
        """Block until every slot has started (or died starting too often)."""
        while any(s.starting for s in self.slots):
            self.wait(60.0)


_RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
_RAY_WORKER_LOGGER = "ray._private.worker"


def _runtime_env() -> dict[str, Any]:
    """Workers import what the driver can: the user's PYTHONPATH as given, and the current
    directory (where ``module:function`` tasks often live) after the installed packages, so a
    stray sklearn.py there cannot replace the real one."""
    env = {"GROUPWISE_TASK_PATH": os.getcwd()}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {"env_vars": env, "worker_process_setup_hook": "groupwise.execution._worker.task_path"}


def _private_token() -> None:
    """Ray writes its token readable by every user of the machine; only its owner needs it."""
    token = Path.home() / ".ray" / "auth_token"
    with contextlib.suppress(OSError):
        if token.exists() and token.stat().st_mode & 0o077:
            token.chmod(0o600)


def _quiet_token_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled for this")


def _quiet_sigterm_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("SIGTERM handler is not set because")


def _cause(error: BaseException) -> str:
    """The actor's own error, e.g. " (ModuleNotFoundError: No module named 'groupwise')"."""
    lines = [line.strip() for line in str(error).splitlines()]
    causes = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception"))]
    return f" ({causes[-1][:200]})" if causes else ""


def _check_reachable(address: str | None) -> None:
    """Fail fast on a cluster address nobody answers: Ray itself waits minutes for it."""
    if address in (None, "", "auto", "local"):
        return
    reason = unreachable(str(address))
    if reason is not None:
        raise StudyError(
            f"cannot reach a Ray cluster at {address!r} ({reason}); start one with "
            "`ray start --head --port=PORT` and pass --ray-address HOST:PORT, or leave "
            "--ray-address out to run on this machine"
        )
