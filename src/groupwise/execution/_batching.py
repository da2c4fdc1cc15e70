"""A worker's K candidates (``workers.batch``): each started trial trains in a group of
trials that can share a batched step (:func:`~groupwise.training.batch_key`, one seed), or
alone where it cannot (the reason goes with its run's facts). One call trains every live
candidate one epoch and answers one reply per candidate, as if each had its own worker.
No Ray and no database here: the worker calls it, the pool's virtual slots feed it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from groupwise.config import TrialConfig
from groupwise.execution._protocol import Placement, Reply, Stopped, Trained
from groupwise.tasks import Task
from groupwise.training import (
    BatchedTrainer,
    DivergedError,
    EpochReport,
    Trainer,
    TrainingOptions,
    batch_check,
    batch_key,
    unbatchable_config,
)

__all__ = ["Candidates", "Start"]

Start = tuple[int, dict[str, Any], int]  # (candidate slot, config, training seed)
Guard = Callable[[Callable[[], Any], Callable[[], None]], Any]  # a call, or its Stopped
# the config a worker checks its model's batching with (AdamW batches on every model)
_PROBE = TrialConfig.from_dict({"scheme": "single", "groups": {"all": {"optimizer": "adamw"}}})


@dataclass
class _Group:
    trainer: Trainer | BatchedTrainer
    slots: list[int]  # candidate slot of each member, by the trainer's candidate index
    alone: str | None = None  # why its one member cannot batch
    live: set[int] = field(default_factory=set)


class Candidates:
    """The candidates of one worker: started together, trained an epoch per call."""

    def __init__(
        self, task: Task, device: torch.device, options: TrainingOptions, guard: Guard
    ) -> None:
        self.task, self.device, self.options = task, device, options
        self.guard = guard  # runs a call, mapping a trial's own errors to a Stopped reply
        self.groups: list[_Group] = []

    def start(self, starts: Sequence[Start]) -> list[tuple[int, Reply]]:
        """Form the groups of a new batch; a candidate whose trainer cannot even be made
        answers at once."""
        self.groups = []
        keyed: dict[tuple[str, int], list[tuple[int, TrialConfig]]] = {}
        failed: list[tuple[int, Reply]] = []
        for slot, data, seed in starts:
            config = TrialConfig.from_dict(data)
            reason = self._alone(config)
            if reason is None:
                keyed.setdefault((batch_key(config), seed), []).append((slot, config))
            else:
                failed.extend(self._alone_group(slot, config, seed, reason))
        for (_, seed), members in keyed.items():
            if len(members) == 1:
                failed.extend(self._alone_group(*members[0], seed, None))
                continue
            failed.extend(self._batched_group(members, seed))
        return failed

    @functools.cached_property
    def model_reason(self) -> str | None:
        """Why this task's model cannot batch (None: it can), checked once per worker."""
        return batch_check(self.task, _PROBE, self.options)

    def _alone(self, config: TrialConfig) -> str | None:
        """Why this config trains alone (None: it may batch): the model's reason, else the
        config's."""
        return self.model_reason or unbatchable_config(config, self.options)

    def _alone_group(
        self, slot: int, config: TrialConfig, seed: int, reason: str | None
    ) -> list[tuple[int, Reply]]:
        """A candidate trained alone: ``reason``, why it cannot batch (None: it could, but
        no other candidate of the batch matches it)."""
        made = self.guard(
            lambda: Trainer(self.task, config, seed=seed, device=self.device, options=self.options),
            lambda: None,
        )
        if isinstance(made, Stopped):
            return [(slot, made)]
        self.groups.append(_Group(made, [slot], reason, {slot}))
        return []

    def _batched_group(
        self, members: list[tuple[int, TrialConfig]], seed: int
    ) -> list[tuple[int, Reply]]:
        slots = [slot for slot, _ in members]
        configs = [config for _, config in members]
        made = self.guard(
            lambda: BatchedTrainer(
                self.task, configs, seed=seed, device=self.device, options=self.options
            ),
            lambda: None,
        )
        if isinstance(made, Stopped):
            return [(slot, made) for slot in slots]
        failed: list[tuple[int, Reply]] = [
            (slots[i], Stopped("failed", reason)) for i, reason in made.failed.items()
        ]
        live = {slots[i] for i in made.ids}
        self.groups.append(_Group(made, slots, None, live))
        return failed

    def drop(self, slots: Sequence[int]) -> None:
        """These candidates have ended (pruned, failed, timed out): train them no more."""
        for group in self.groups:
            gone = group.live & set(slots)
            if gone and isinstance(group.trainer, BatchedTrainer):
                group.trainer.drop([group.slots.index(s) for s in gone])
            group.live -= gone
        self.groups = [g for g in self.groups if g.live]

    def epoch(self, placement: Callable[[], Placement]) -> list[tuple[int, Reply]]:
        """One epoch of every live candidate: one reply each."""
        replies: list[tuple[int, Reply]] = []
        for group in list(self.groups):
            replies.extend(self._group_epoch(group, placement))
        self.groups = [g for g in self.groups if g.live]
        return replies

    def _group_epoch(
        self, group: _Group, placement: Callable[[], Placement]
    ) -> list[tuple[int, Reply]]:
        members = sorted(group.live)
        outcome = self.guard(group.trainer.run_epoch, group.live.clear)
        if isinstance(outcome, Stopped):  # the group's own error: each member's reply
            group.live.clear()  # the group is let go after this epoch
            return [(slot, outcome) for slot in members]
        where, peak = placement(), group.trainer.peak_memory_bytes()
        if isinstance(outcome, EpochReport):  # a trainer alone
            outcome = {0: outcome}
        replies: list[tuple[int, Reply]] = []
        for index, result in outcome.items():
            slot = group.slots[index]
            if isinstance(result, DivergedError):
                replies.append((slot, Stopped("diverged", str(result))))
                group.live.discard(slot)
                continue
            report = _with_batch(result, group)
            replies.append((slot, Trained(report, peak, where)))
        return replies


def _with_batch(report: EpochReport, group: _Group) -> EpochReport:
    """The report with how its trial was batched in its run's facts."""
    training = dict(report.training)
    if isinstance(group.trainer, Trainer):
        training["batched"] = 1
        if group.alone is not None:
            training["alone_because"] = group.alone
    return replace(report, training=training)
