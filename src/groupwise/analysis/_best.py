"""Reading finished studies: best configs, per-study status, one trial's config.

Reads go through Optuna's public storage API only (as optuna-dashboard does), so the
database stays readable by every Optuna tool.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from groupwise.config import TrialConfig
from groupwise.errors import StudyError
from groupwise.store import (
    CONFIG_ATTR,
    CONFIRMS_ATTR,
    DUPLICATE_ATTR,
    IDENTITY_ATTR,
    METRIC_ATTR,
    REASON_ATTR,
    RETRIED_ATTR,
    SEEDED_ATTR,
    TASK_ATTR,
    TRANSFER_ATTR,
    Confirmed,
    Source,
    Tally,
    check_exists,
    confirmed,
    open_study,
    opened,
    source_url,
    study_names_in,
    tally,
    voided_of,
    within_noise,
)

__all__ = [
    "BestTrial",
    "StudyStatus",
    "best_trials",
    "export_comment",
    "load_best",
    "noise_note",
    "study_status",
    "study_task",
    "study_transfer",
    "trial_config",
]


@dataclass(frozen=True)
class BestTrial:
    """One of a study's best configs. ``value``: its mean over its fresh seeds where the
    study confirmed it (``confirmed``), else its trial's value."""

    study: str
    trial: int
    value: float
    direction: str
    metric: str
    config: TrialConfig
    confirmed: Confirmed | None = None

    def to_dict(self) -> dict[str, Any]:
        c = self.confirmed
        return {
            "study": self.study,
            "trial": self.trial,
            "value": self.value,
            "direction": self.direction,
            "metric": self.metric,
            "config": self.config.to_dict(),
            "confirmed": None
            if c is None
            else {
                "mean": c.mean,
                "spread": c.spread,
                "seeds": len(c.values),
                "values": list(c.values),
                "train_seeds": list(c.seeds),
                "failed": c.failed,
                "pending": c.pending,
                "search_value": c.search_value,
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BestTrial:
        """The record :meth:`to_dict` wrote (the service's answer)."""
        c = d.get("confirmed")
        return cls(
            d["study"],
            d["trial"],
            d["value"],
            d["direction"],
            d["metric"],
            TrialConfig.from_dict(d["config"]),
            None
            if c is None
            else Confirmed(
                d["trial"],
                c["search_value"],
                tuple(c["values"]),
                tuple(c["train_seeds"]),
                c["failed"],
                c["pending"],
            ),
        )

    def summary(self) -> str:
        """Its value in words: a mean with its spread and seeds, or one trial's value."""
        c = self.confirmed
        if c is None:
            return f"{self.metric} {self.value:.6g} (one trial, not confirmed)"
        spread = "" if c.spread is None else f" ± {c.spread:.3g} sd"
        words = f"{self.metric} {self.value:.6g}{spread} over {len(c.values)} fresh seeds"
        if c.failed:
            words += f", {c.failed} failed"
        if c.pending:
            words += f", {c.pending} still to run"
        search = "" if c.search_value is None else f" (its search trial: {c.search_value:.6g})"
        return words + search


@dataclass(frozen=True)
class StudyStatus:
    study: str
    task: str
    metric: str
    direction: str
    counts: Tally  # the one count (groupwise.store.tally), as the progress bar shows it
    fail_reasons: tuple[tuple[int, str], ...]  # (trial, "FAIL: why" or "PRUNED: why")


@dataclass(frozen=True)
class FinishedTrial:
    """A finished trial this study trained, with its config. Left out of every query: copies
    from an earlier study (``groupwise.seeded_from``), replays of
    a config already trained (``groupwise.duplicate_of``), attempts superseded by a retry,
    a broken task's voided failures, and trials groupwise did not sample."""

    trial: optuna.trial.FrozenTrial
    config: TrialConfig

    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def state(self) -> TrialState:
        return self.trial.state

    @property
    def value(self) -> float | None:
        """The objective of a COMPLETE trial with a finite one, else None."""
        value = self.trial.value if self.trial.state == TrialState.COMPLETE else None
        return value if value is not None and math.isfinite(value) else None


@functools.lru_cache(maxsize=20_000)
def config_of(text: str) -> TrialConfig:
    """A trial's config, parsed once per distinct text: configs are frozen records, so one
    parse serves every later read (the service reads the same trials again and again; the
    parse was most of a read of a 1,000-trial study, BENCHMARKS.md)."""
    return TrialConfig.from_json(text)


def trained_trials(study: optuna.Study) -> list[FinishedTrial]:
    """The study's search trials that trained (confirmations are not: their configs are the
    leaders', :func:`best_trials` reads them)."""
    voided = voided_of(study.user_attrs)
    return [
        FinishedTrial(t, config_of(t.user_attrs[CONFIG_ATTR]))
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished()
        and CONFIG_ATTR in t.user_attrs
        and DUPLICATE_ATTR not in t.user_attrs
        and SEEDED_ATTR not in t.user_attrs
        and CONFIRMS_ATTR not in t.user_attrs
        and not t.user_attrs.get(RETRIED_ATTR)
        and t.number not in voided
    ]


def best_first(rows: Sequence[FinishedTrial], direction: str) -> list[FinishedTrial]:
    """The rows with a value, best first."""
    sign = 1.0 if direction == "minimize" else -1.0
    return sorted((r for r in rows if r.value is not None), key=lambda r: sign * (r.value or 0.0))


def best_trials(study: str, storage: Source = None, top: int = 1) -> list[BestTrial]:
    """The ``top`` best configs, best first (duplicates of one training shown once): the
    confirmed leaders by their mean over fresh seeds (``groupwise.store.confirmed``), then
    the other complete trials by value."""
    loaded = open_study(study, storage)
    direction = loaded.direction.name.lower()
    metric = str(loaded.user_attrs.get(METRIC_ATTR, "value"))
    trained = trained_trials(loaded)
    by_number = {r.number: r for r in trained}
    leaders = [
        c for c in confirmed(loaded.get_trials(deepcopy=False), direction) if c.trial in by_number
    ]
    rows = [
        BestTrial(
            study,
            c.trial,
            c.mean if c.mean is not None else (c.search_value or math.nan),
            direction,
            metric,
            by_number[c.trial].config,
            c,
        )
        for c in leaders
    ]
    shown = {c.trial for c in leaders}
    rest = best_first([r for r in trained if r.number not in shown], direction)
    rows += [
        BestTrial(study, r.number, r.value or math.nan, direction, metric, r.config)
        for r in rest[: max(0, top - len(rows))]
    ]
    if not rows:
        raise StudyError(
            f"study {study!r} has no complete trial yet; `groupwise status {study}` says why"
        )
    return rows[:top]


def noise_note(rows: Sequence[BestTrial]) -> str | None:
    """What ``best`` says when its two leaders are within each other's noise (their means
    over the same fresh seeds differ by less than twice that difference's standard error)."""
    if len(rows) < 2 or rows[0].confirmed is None or rows[1].confirmed is None:
        return None
    first, second = rows[0].confirmed, rows[1].confirmed
    error = within_noise(first, second)
    if error is None:
        return None
    gap = abs((first.mean or 0.0) - (second.mean or 0.0))
    return (
        f"trials {first.trial} and {second.trial} are within each other's noise: their means "
        f"differ by {gap:.3g}, within twice its standard error ({error:.3g}) over their "
        f"shared seeds; either config is as good a choice, or confirm on more seeds"
    )


def export_comment(best: BestTrial) -> str:
    """The line an exported config starts with: where it came from and what it scored."""
    return f"study {best.study}, trial {best.trial}: {best.summary()}"


def load_best(study: str, storage: Source = None) -> TrialConfig:
    """The best config's TrialConfig (the confirmed leader, where the study confirmed its
    leaders); ``groupwise.build(model, load_best(...), total_steps=N)`` rebuilds it."""
    return best_trials(study, storage, top=1)[0].config


def trial_config(study: str, trial: int, storage: Source = None) -> TrialConfig:
    loaded = open_study(study, storage)
    trials = {t.number: t for t in loaded.get_trials(deepcopy=False)}
    if trial not in trials:
        raise StudyError(
            f"study {study!r} has no trial {trial}; its trials are 0..{len(trials) - 1}"
        )
    if CONFIG_ATTR not in trials[trial].user_attrs:
        raise StudyError(
            f"trial {trial} of {study!r} has no groupwise config (it was not sampled by groupwise)"
        )
    return config_of(trials[trial].user_attrs[CONFIG_ATTR])


def study_status(storage: Source = None, study: str | None = None) -> list[StudyStatus]:
    storage = opened(storage)  # once, not once per study
    names = study_names_in(storage)
    if study is not None:
        check_exists(study, names, source_url(storage))
    out = []
    for name in [study] if study else names:
        loaded = open_study(name, storage)
        trials = loaded.get_trials(deepcopy=False)
        direction = loaded.direction.name.lower()
        reasons = tuple(  # failures, and trials pruned as infeasible (out of memory)
            (t.number, f"{t.state.name}: {t.user_attrs[REASON_ATTR]}")
            for t in trials
            if REASON_ATTR in t.user_attrs and t.state.is_finished()
        )
        out.append(
            StudyStatus(
                study=name,
                task=str(loaded.user_attrs.get(TASK_ATTR, "?")),
                metric=str(loaded.user_attrs.get(METRIC_ATTR, "value")),
                direction=direction,
                counts=tally(trials, direction, voided_of(loaded.user_attrs)),
                fail_reasons=reasons,
            )
        )
    return out


def study_task(study: str, storage: Source = None) -> dict[str, Any]:
    """The task a study searched, as its file gave it (``name``, ``options``, and ``train``
    for a function task); the model its configs were searched on is this task's."""
    loaded = open_study(study, storage)
    record = loaded.user_attrs.get(IDENTITY_ATTR)
    if not isinstance(record, dict) or not isinstance(record.get("task"), dict):
        raise StudyError(
            f"study {study!r} does not record its task (launched before groupwise recorded "
            "it, or not by groupwise); transfer its config in Python: groupwise.transfer("
            "config, proxy_model, target_model)"
        )
    return _recorded_task(record)


def _recorded_task(record: dict[str, Any]) -> dict[str, Any]:
    """The task of a study's identity record, its defaults filled in (the identity leaves
    out a data seed equal to the study's seed)."""
    task = dict(record.get("task", {}))
    task.setdefault("options", {})
    task.setdefault("data_seed", record.get("seed", 0))
    return task


def study_transfer(study: str, storage: Source = None) -> dict[str, Any]:
    """What ``transfer-check`` needs of a study: its best config carried to its target
    (``transfer``), how its trials trained (``training``), its ``objective`` and ``seed``."""
    loaded = open_study(study, storage)
    carried = loaded.user_attrs.get(TRANSFER_ATTR)
    record = loaded.user_attrs.get(IDENTITY_ATTR)
    if not isinstance(carried, dict) or not isinstance(record, dict):
        raise StudyError(
            f"study {study!r} records no transferred config: give its file a target "
            "(transfer: {options: {width: 512}}) and launch it again (a finished study only "
            "records it), or carry a config yourself: groupwise export --to-task"
        )
    return {
        "transfer": carried,
        "training": record.get("training", {}),
        "objective": record.get("objective", {}),
        "seed": record.get("seed", 0),
        "data_seed": _recorded_task(record)["data_seed"],
    }
