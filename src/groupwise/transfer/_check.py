"""``transfer-check``: the carried config trained at the target, as the study trained its
trials (its ``training:``, its objective's metric and reduce), on fresh training seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from groupwise.config import TrialConfig
from groupwise.errors import ConfigError
from groupwise.studyfiles import Objective
from groupwise.tasks import resolve_task
from groupwise.training import DivergedError, Trainer, TrainingOptions
from groupwise.transfer._tasks import named

__all__ = ["TransferCheck", "best_checked", "check_transfer", "one_target"]


@dataclass(frozen=True)
class TransferCheck:
    """The objective the carried config reached at the target, per seed."""

    metric: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    proxy_value: float | None  # the study's best, on the proxy

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def spread(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def diverged(self) -> int:
        """Seeds whose training diverged (their value is inf)."""
        return sum(not math.isfinite(v) for v in self.values)

    def summary(self) -> str:
        if self.diverged:
            return f"{self.metric}: diverged on {self.diverged} of {len(self.values)} seeds"
        spread = f" ± {self.spread:.3g}" if len(self.values) > 1 else ""
        proxy = "" if self.proxy_value is None else f" (the proxy's best: {self.proxy_value:.6g})"
        seeds = f"{len(self.values)} seed{'s' if len(self.values) > 1 else ''}"
        return f"{self.metric} {self.mean:.6g}{spread} over {seeds}{proxy}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "seeds": list(self.seeds),
            "values": [v if math.isfinite(v) else None for v in self.values],  # None: diverged
            "mean": None if self.diverged else self.mean,
            "spread": None if self.diverged else self.spread,
            "summary": self.summary(),
        }


def check_transfer(
    carried: Mapping[str, Any],
    training: Mapping[str, Any],
    objective: Mapping[str, Any],
    seeds: Sequence[int],
    *,
    data_seed: int = 0,
    device: str = "cpu",
) -> TransferCheck:
    """Train ``carried['config']`` on ``carried['target']`` (a task name and options) once
    per training seed, as a study with ``training`` and ``objective`` trains a trial."""
    _check_device(device)
    target = carried["target"]
    task = resolve_task(target["name"], target["options"], seed=data_seed)
    config = TrialConfig.from_dict(carried["config"], source="the transferred config")
    goal = Objective(**objective)
    options = TrainingOptions(**training)
    values = []
    for seed in seeds:
        trainer = Trainer(task, config, seed=seed, device=device, options=options)
        try:
            curve = [trainer.run_epoch().metrics[goal.metric] for _ in range(options.epochs)]
        except DivergedError:  # a carried lr too large for the target: a result, said so
            values.append(math.inf)
            continue
        values.append(goal.value_of(curve))
    return TransferCheck(goal.metric, tuple(seeds), tuple(values), carried.get("value"))


def one_target(studies: Mapping[str, Mapping[str, Any]]) -> None:
    """Studies whose checks are compared (``transfer-check A B``) must be carried to one target
    and scored by one objective; ConfigError naming the first two that are not. ``studies``:
    each study's ``transfer`` record and ``objective``, as ``study_transfer`` gives them."""
    (first, facts), *others = studies.items()
    for name, other in others:
        mine, theirs = facts["transfer"]["target"], other["transfer"]["target"]
        if mine != theirs:
            raise ConfigError(
                f"transfer-check: studies {first!r} and {name!r} are carried to other targets "
                f"({named(mine)} against {named(theirs)}); compare studies of one target"
            )
        if facts["objective"] != other["objective"]:
            raise ConfigError(
                f"transfer-check: studies {first!r} and {name!r} score other objectives "
                f"({facts['objective']} against {other['objective']}); compare studies of one"
            )


def best_checked(checks: Mapping[str, TransferCheck], objective: Mapping[str, Any]) -> str | None:
    """The study whose carried config scored best at the target (mean over its seeds, by the
    studies' ``objective``), or None where every one diverged there."""
    finite = {name: c.mean for name, c in checks.items() if not c.diverged}
    if not finite:
        return None
    pick = min if Objective(**objective).direction == "minimize" else max
    return pick(finite, key=finite.__getitem__)


def _check_device(device: str) -> None:
    """A device torch can name and this machine has; ConfigError otherwise."""
    try:
        named = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device: {device!r} is not a device; cpu, cuda or cuda:N") from None
    if named.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device: {device!r}, but this machine has no CUDA device; use cpu")
