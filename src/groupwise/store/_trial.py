"""A trial as the ledger takes it and gives it back: the records that cross between the
ledger and the driver (plain data, no Optuna), and what the ledger needs of the plan's
sampler and pruner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from groupwise.store._records import GroupFacts

__all__ = [
    "Buildable",
    "Deferred",
    "Ending",
    "EpochFacts",
    "Lost",
    "Opened",
    "Proposal",
    "Refusal",
    "Settled",
]

Ending = Literal["COMPLETE", "PRUNED", "FAIL"]
# How a lost trial ended: failed and enqueued again (it does not count toward the budget,
# its retry does), or failed for good (it counts).
Lost = Literal["retried", "failed"]


class Buildable(Protocol):
    """A sampler or pruner as the plan records it (``groupwise.plan.Component``): plain data
    the ledger builds the live Optuna object from."""

    def build(self) -> Any: ...

    def reseeded(self, *salt: object) -> Buildable: ...


@dataclass(frozen=True)
class Refusal:
    """A trial not started because it cannot fit: PRUNED with a violated ``memory``
    constraint, ``over`` (the fraction it is over) so the sampler learns where not to go."""

    reason: str
    over: float


@dataclass(frozen=True)
class Proposal:
    """What the caller made of a new trial's suggestions."""

    config: Mapping[str, Any]  # the TrialConfig as plain data
    config_json: str  # the record, on the Optuna trial (``groupwise.config``)
    canonical: str  # equal for configs that train identically
    groups: Sequence[GroupFacts]
    refusal: Refusal | None = None


@dataclass(frozen=True)
class Opened:
    """A trial to train."""

    number: int
    run_id: int
    config: Mapping[str, Any]
    seed: int | None = None  # its training seed (None: the study's)
    confirms: int | None = None  # a confirmation: the search trial whose config it trains


@dataclass(frozen=True)
class Settled:
    """A trial recorded without training: a replay of trial ``replay_of``, or refused."""

    number: int
    state: Ending
    replay_of: int | None = None


@dataclass(frozen=True)
class Deferred:
    """No trial started: the next queued config (a recipe, a retry) trains exactly as a trial
    running now, so it waits in the queue to replay that one's outcome. Ask again once a
    trial has ended."""

    running: int  # the trial it waits for


@dataclass(frozen=True)
class EpochFacts:
    """One trained epoch, as the ledger records it."""

    epoch: int
    value: float  # the study's objective metric
    train_loss: float
    metrics: Mapping[str, float]
    lrs: Mapping[str, float]
    elapsed_s: float
