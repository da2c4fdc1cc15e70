"""A fast start: local workers train a launch's first trials; Ray starts only if it lasts.

A private Ray takes seconds to start, and its workers seconds more to import torch; a launch
that waited for them spent most of a small study's time before its first trial. Here the
pool forks ``count`` local workers (:mod:`groupwise.execution._local`) before the launch
opens its database, with torch already imported, and keeps a thread that starts Ray once the
launch has run :data:`RAY_AFTER_S` (at once when a local worker is lost). The driver sees one
pool: slots ``0..count-1`` are Ray's (there once Ray is up), slots ``count..`` the local
workers'. At most ``count`` trials train at once, Ray's slots first; once Ray is up the local
workers yield it the CPU, and once every Ray worker has started a local worker takes no new
trial and is stopped when its trial ends, so the study goes on on Ray as before. No Ray
here: the :class:`WorkerPool` the thread builds imports it.

Only where a local worker trains exactly as a Ray worker would (:func:`bridge_refusal`):
a private Ray on this machine, CPU workers of one thread, one candidate per worker, and a
driver process with no other thread (``fork`` copies a thread's locks, not the thread).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from groupwise.errors import StudyError
from groupwise.execution._local import LocalWorker, wait_any
from groupwise.execution._protocol import Lost, Reply, WorkerSettings

if TYPE_CHECKING:
    from groupwise.execution._pool import WorkerPool

__all__ = ["BridgedPool", "bridge_refusal"]

log = logging.getLogger("groupwise")

# Ray's start costs this 2-core machine ~10 CPU-seconds (its processes, then each worker's
# torch import), which slow the trials running beside it, and on one machine Ray's workers
# train no faster than local ones: a launch that ends within this many seconds never starts
# Ray; a longer one hands over to Ray's workers and pays it once (BENCHMARKS, "A launch's
# start").
RAY_AFTER_S = 20.0
SLICE_S = 0.01  # while both kinds of worker may answer: how long to wait on each in turn
OFF = "GROUPWISE_FAST_START"  # "1" (default) or "0": trials wait for Ray's workers


def bridge_refusal(settings: WorkerSettings, count: int, gpus: float, address: str | None) -> str:
    """Why a launch cannot start on local workers ("" when it can)."""
    asked = os.environ.get(OFF, "1")
    if asked not in ("0", "1"):
        raise StudyError(
            f"{OFF}={asked!r}: use 1 (the default: the first trials start on local workers "
            "while Ray waits) or 0 (trials wait for Ray's workers)"
        )
    if asked == "0":
        return f"{OFF}=0"
    if address not in (None, "", "local"):
        return "the workers are on a Ray cluster the launch joins"
    if gpus > 0 or settings.cpus > 1 or settings.batch > 1:
        return "only CPU workers of one thread, one candidate each, start locally"
    if not sys.platform.startswith("linux"):
        return "local workers are forked, which only Linux does safely here"
    if threading.active_count() > 1:
        return "the launching process runs other threads, which a fork would not carry"
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return "Ray is running in this process already"
    if count * settings.cpus > len(os.sched_getaffinity(0)):
        return "the workers need more CPUs than this machine has (Ray's check says so)"
    return ""


class BridgedPool:
    """``count`` local workers, training until Ray's have started, and a :class:`WorkerPool`
    of ``count`` Ray workers (``make_pool``'s), started in a thread once the launch has run
    :data:`RAY_AFTER_S`."""

    def __init__(
        self, make_pool: Callable[[], WorkerPool], settings: WorkerSettings, count: int
    ) -> None:
        self.make_pool, self.settings, self.count = make_pool, settings, count
        self.capacity = count
        self.local: list[LocalWorker | None] = []  # None: stopped
        self.ray: WorkerPool | None = None  # set by the thread once Ray and its pool are up
        self.error: BaseException | None = None  # the thread's, raised to the driver
        self.up = threading.Event()
        self.done = threading.Event()  # close(): the thread may end (after Ray's shutdown)
        self.go = threading.Event()  # start Ray now (a local worker died; closing)
        self.yielded = False  # the local workers run below Ray's (once Ray is up)
        self.thread: threading.Thread | None = None

    # -- life -------------------------------------------------------------------------------
    def fork(self) -> None:
        """Fork the local workers: before the launch opens a database connection or starts a
        thread, which a child would share or lose."""
        self.local = [LocalWorker(self.settings) for _ in range(self.count)]

    def start(self) -> None:
        """Start Ray in a thread that lives as long as Ray: Ray's processes die with the
        thread that started them (``PR_SET_PDEATHSIG``)."""
        self.thread = threading.Thread(target=self._run_ray, name="groupwise-ray", daemon=True)
        self.thread.start()

    def _run_ray(self) -> None:
        self.go.wait(RAY_AFTER_S)
        if self.done.is_set():  # the launch ended first: Ray was never needed
            self.up.set()
            return
        pool = None
        try:
            pool = self.make_pool()
            pool.start()
            self.ray = pool
        except BaseException as e:
            self.error = e
        finally:
            self.up.set()
        self.done.wait()
        if pool is not None:
            pool.close()

    def close(self) -> None:
        """Stop the local workers, then Ray (once its start has ended)."""
        for i in range(len(self.local)):
            self._drop(i)
        self.done.set()
        self.go.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def wait_started(self) -> None:
        self.go.set()
        self.up.wait()
        self._check()
        if self.ray is not None:
            self.ray.wait_started()

    def device_memory(self) -> list[int | None]:
        return [] if self.ray is None else self.ray.device_memory()

    def _check(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise (
                error
                if isinstance(error, StudyError)
                else StudyError(f"Ray could not start: {type(error).__name__}: {error}")
            ) from error

    def _ray_ready(self) -> WorkerPool | None:
        """Ray's pool once it is up (raising what stopped it); None while it starts. Once it
        is up, the local workers yield the CPU to Ray's starting ones, which Ray runs at
        niceness 15: else they would wait for the local workers' trials to end."""
        if not self.up.is_set():
            return None
        self._check()
        if self.ray is not None and not self.yielded:
            self.yielded = True
            for worker in self.local:
                if worker is not None:
                    worker.yield_cpu()
        return self.ray

    # -- slots ------------------------------------------------------------------------------
    def free(self) -> list[int]:
        """Free slots, Ray's first, as many as may start a trial (``count`` train at once)."""
        ray = self._ray_ready()
        slots = ray.free() if ray is not None else []
        settled = ray is not None and not any(s.starting for s in ray.slots)
        for i, worker in enumerate(self.local):
            if worker is None or worker.starting or worker.calling:
                continue
            if settled:  # Ray's workers have all started: this one's part is over
                self._drop(i)
            else:
                slots.append(self.count + i)
        return slots[: max(0, self.count - len(self.busy()))]

    def busy(self) -> dict[int, float]:
        ray = self._ray_ready()
        slots = dict(ray.busy()) if ray is not None else {}
        for i, worker in enumerate(self.local):
            if worker is not None and not worker.starting and worker.calling:
                slots[self.count + i] = worker.since
        return slots

    def _local(self, slot: int) -> LocalWorker | None:
        return self.local[slot - self.count] if slot >= self.count else None

    def _drop(self, i: int, lost: bool = False) -> None:
        """Stop local worker ``i`` (mid-epoch if need be); a lost one starts Ray now, whose
        workers replace it."""
        worker = self.local[i]
        if worker is not None:
            worker.kill()
            self.local[i] = None
        if lost:
            self.go.set()

    def submit(self, slot: int, config: dict[str, Any] | None, seed: int | None = None) -> None:
        worker = self._local(slot)
        if worker is None:
            assert self.ray is not None, "a Ray slot before Ray is up"
            self.ray.submit(slot, config, seed)
        else:
            worker.call("step", config, seed)

    def companions(self, slot: int) -> int:
        return 0  # one trial per worker

    def release(self, slot: int) -> None:
        """The driver has ended the slot's trial (its slot is free already)."""

    def replace(self, slot: int) -> None:
        """Stop the slot's worker mid-epoch; a local one is not replaced (Ray's take over)."""
        if slot < self.count:
            assert self.ray is not None
            self.ray.replace(slot)
        else:
            self._drop(slot - self.count, lost=True)

    # -- answers ----------------------------------------------------------------------------
    def wait(self, timeout_s: float) -> tuple[int, Reply] | None:
        """The next reply of a training slot, or None (timeout, or a worker became free)."""
        deadline = time.perf_counter() + max(0.0, timeout_s)
        while True:
            got = self._local_answer()
            if got is not None:  # a local worker answered, or started (no reply: None)
                slot, reply = got
                return None if reply is None else (slot, reply)
            ray = self._ray_ready()
            waiting = [w for w in self.local if w is not None and w.calling]
            left = deadline - time.perf_counter()
            if ray is not None and not waiting:
                return ray.wait(left)
            if ray is not None:
                before = len(ray.free())
                answer = ray.wait(min(left, SLICE_S))
                if answer is not None or len(ray.free()) > before:
                    return answer
            else:
                wait_any(waiting, min(left, SLICE_S if waiting else 0.05))
            if time.perf_counter() >= deadline:
                return None

    def _local_answer(self) -> tuple[int, Reply | None] | None:
        """A local worker's answer: (slot, reply), (slot, None) for one that has started
        (or died starting: it is stopped), None when none has answered."""
        for i, worker in enumerate(self.local):
            if worker is None or not worker.ready():
                continue
            was_starting = worker.starting
            answer = worker.answer()
            if isinstance(answer, Lost):
                self._drop(i, lost=True)
                if was_starting:
                    log.debug("a local worker did not start: %s", answer.reason)
                    return self.count + i, None
            return self.count + i, (None if was_starting else answer)
        return None
