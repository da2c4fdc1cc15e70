"""What a worker says back to the driver: typed replies, one per call (no Ray here).

A worker trains one epoch per call (a function task: runs it to its next report). It answers
:class:`Trained` (the epoch's report, where it ran and its peak memory), :class:`Finished` (a
function task's function returned) or :class:`Stopped` (the trial cannot go on: it diverged,
raised, or ran out of memory). A worker that dies answers nothing; the pool reports that as
:class:`Lost`. The driver matches on the type, and mypy checks every case is handled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from groupwise.training import EpochReport, TrainingOptions

__all__ = [
    "Finished",
    "Lost",
    "Placement",
    "Pool",
    "Reply",
    "Stopped",
    "Trained",
    "WorkerSettings",
]


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker needs to train any trial of a study."""

    task: str
    task_options: dict[str, Any]
    seed: int  # the search's: each trial's initialisation and batch order
    cpus: float
    data_seed: int | None = None  # the task's data (None: the search's seed, as before)
    function: bool = False  # ``task`` is the user's training function (``task: {train:}``)
    training: TrainingOptions = field(default_factory=TrainingOptions)  # epochs, batch, ...
    batch: int = 1  # candidates trained at once (``workers.batch``)


@dataclass(frozen=True)
class Placement:
    """Where a worker trains: recorded with every trial it runs."""

    host: str
    pid: int
    device: str
    node: str | None = None
    gpu_ids: tuple[str, ...] = ()
    visible_devices: str | None = None
    device_memory_bytes: int | None = None


@dataclass(frozen=True)
class Trained:
    """One epoch trained and evaluated."""

    report: EpochReport
    peak_memory_bytes: int
    placement: Placement


@dataclass(frozen=True)
class Stopped:
    """The trial cannot go on; ``kind`` says why, ``reason`` in words."""

    kind: Literal["diverged", "failed", "out_of_memory"]
    reason: str


@dataclass(frozen=True)
class Finished:
    """A function task's function returned after its reports: the trial is complete.
    ``value``: what it returned (None: the study reduces the values it reported)."""

    value: float | None


@dataclass(frozen=True)
class Lost:
    """The worker died under the trial (said by the pool, not the worker)."""

    reason: str
    details: dict[str, Any] = field(default_factory=dict)


Reply = Trained | Finished | Stopped | Lost


class Pool(Protocol):
    """The workers as the driver sees them: slots it starts trials on and hears from, one
    trial per slot (Ray's workers; K virtual slots a worker with ``workers.batch``; local
    workers, then Ray's, with a fast start)."""

    @property
    def capacity(self) -> int: ...  # trials that can train at once

    def free(self) -> list[int]: ...  # slots a trial may start on now

    def submit(self, slot: int, config: dict[str, Any] | None, seed: int | None = None) -> None:
        """Start a trial on a free slot (``config``), or train its next epoch (None)."""

    def wait(self, timeout_s: float) -> tuple[int, Reply] | None:
        """The next reply of a training slot, or None (timeout, or a worker became free)."""

    def companions(self, slot: int) -> int: ...  # trials that may join the batch it leads

    def release(self, slot: int) -> None: ...  # the driver has ended the slot's trial

    def replace(self, slot: int) -> None: ...  # stop its worker mid-epoch (a timeout)
