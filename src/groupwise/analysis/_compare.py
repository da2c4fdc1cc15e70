"""Comparisons within a study (by scheme, by each group's optimizer, each group's lr among
the best trials) and across studies on the same task (a baseline against a per-group search).

Every trained trial counts once: replays of a configuration already trained (trials with
``groupwise.duplicate_of``) are left out, as are trials without a groupwise config.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from groupwise.analysis._best import FinishedTrial, best_first, config_of, trained_trials
from groupwise.errors import StudyError
from groupwise.store import (
    CONFIG_ATTR,
    IDENTITY_ATTR,
    METRIC_ATTR,
    SPACE_ATTR,
    TASK_ATTR,
    Source,
    Tally,
    differences,
    open_study,
    opened,
    tally,
    voided_of,
)

__all__ = [
    "Comparison",
    "GroupLr",
    "OptimizerSummary",
    "ScheduleSummary",
    "SchemeSummary",
    "StudySummary",
    "compare",
    "compare_studies",
]


# A best or a win from fewer trials than this is shown as tentative.
TENTATIVE_BELOW = 3


@dataclass(frozen=True)
class SchemeSummary:
    scheme: str  # its display name (SchemeChoice.__str__)
    complete: int  # n: the best and median are over this many trials
    pruned: int
    failed: int
    best: float | None
    median: float | None

    @property
    def tentative(self) -> bool:
        return self.complete < TENTATIVE_BELOW


@dataclass(frozen=True)
class ScheduleSummary:
    schedule: str  # the lr schedule's shape (its decay), or "none" for a constant lr
    complete: int  # n
    pruned: int
    failed: int
    best: float | None
    median: float | None

    @property
    def tentative(self) -> bool:
        return self.complete < TENTATIVE_BELOW


@dataclass(frozen=True)
class OptimizerSummary:
    label: str
    optimizer: str
    complete: int  # n
    best: float | None
    median: float | None
    wins: bool  # the best trial with this label used this optimizer

    @property
    def tentative(self) -> bool:
        return self.complete < TENTATIVE_BELOW


@dataclass(frozen=True)
class GroupLr:
    label: str
    top_low: float
    top_high: float
    top_count: int  # how many of the top trials gave this label an lr
    all_low: float
    all_high: float


@dataclass(frozen=True)
class Comparison:
    study: str
    metric: str
    direction: str
    counts: Tally  # the whole study, as ``groupwise status`` counts it
    top: int  # "top trials": this many of the best complete trials
    by_scheme: tuple[SchemeSummary, ...]
    by_optimizer: tuple[OptimizerSummary, ...]
    lr: tuple[GroupLr, ...]
    by_schedule: tuple[ScheduleSummary, ...] = ()  # empty where no trial had a schedule


def _stats(values: Sequence[float], direction: str) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return (min(values) if direction == "minimize" else max(values)), statistics.median(values)


def compare(study: str, storage: Source = None, top: int | None = None) -> Comparison:
    """Per scheme: best, median and counts; per group label and optimizer: best, median,
    which one wins; per label: the lr range of the ``top`` best trials (default: the best
    fifth, at least 3) against the range every complete trial tried."""
    loaded = open_study(study, storage)
    direction = loaded.direction.name.lower()
    rows = trained_trials(loaded)
    ranked = best_first(rows, direction)
    if not ranked:
        raise StudyError(
            f"study {study!r} has no complete trial to compare yet; `groupwise status {study}` "
            "says why"
        )
    top = top or max(3, len(ranked) // 5)
    return Comparison(
        study,
        str(loaded.user_attrs.get(METRIC_ATTR, "value")),
        direction,
        tally(loaded.get_trials(deepcopy=False), direction, voided_of(loaded.user_attrs)),
        top,
        _scheme_summaries(loaded, rows, direction),
        _optimizer_summaries(ranked, direction),
        _lr_ranges(ranked, top),
        _schedule_summaries(loaded, rows, direction),
    )


def _scheme_summaries(
    study: optuna.Study, rows: Sequence[FinishedTrial], direction: str
) -> tuple[SchemeSummary, ...]:
    out = []
    names: dict[str, int] = {}
    values: dict[str, list[float]] = {}
    for r in rows:
        if r.value is not None:
            values.setdefault(r.config.scheme.key, []).append(r.value)
    for key, (display, trials) in sorted(_by_scheme(study).items(), key=lambda kv: kv[1][0]):
        counts = tally(trials, direction, voided_of(study.user_attrs))
        best, median = _stats(values.get(key, []), direction)
        names[display] = names.get(display, 0) + 1  # two schemes shown alike: number them
        shown = display if names[display] == 1 else f"{display} #{names[display]}"
        out.append(
            SchemeSummary(shown, counts.complete, counts.pruned, counts.failed, best, median)
        )
    return tuple(out)


def _schedule_summaries(
    study: optuna.Study, rows: Sequence[FinishedTrial], direction: str
) -> tuple[ScheduleSummary, ...]:
    """Per schedule shape (its decay; "none": a constant lr), as per scheme."""
    shapes: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False):
        if CONFIG_ATTR in t.user_attrs:
            schedule = config_of(t.user_attrs[CONFIG_ATTR]).schedule
            shapes.setdefault("none" if schedule is None else schedule.decay, []).append(t)
    if set(shapes) <= {"none"}:
        return ()
    values: dict[str, list[float]] = {}
    for r in rows:
        if r.value is not None:
            shape = "none" if r.config.schedule is None else r.config.schedule.decay
            values.setdefault(shape, []).append(r.value)
    voided = voided_of(study.user_attrs)
    out = []
    for shape, trials in sorted(shapes.items()):
        counts = tally(trials, direction, voided)
        best, median = _stats(values.get(shape, []), direction)
        out.append(
            ScheduleSummary(shape, counts.complete, counts.pruned, counts.failed, best, median)
        )
    return tuple(out)


def _optimizer_summaries(
    ranked: Sequence[FinishedTrial], direction: str
) -> tuple[OptimizerSummary, ...]:
    out = []
    for label in sorted({label for r in ranked for label in r.config.groups}):
        with_label = [r for r in ranked if label in r.config.groups]
        winner = with_label[0].config.groups[label].optimizer
        for optimizer in sorted({r.config.groups[label].optimizer for r in with_label}):
            values = [
                r.value
                for r in with_label
                if r.config.groups[label].optimizer == optimizer and r.value is not None
            ]
            best, median = _stats(values, direction)
            out.append(
                OptimizerSummary(label, optimizer, len(values), best, median, optimizer == winner)
            )
    return tuple(out)


def _lr_ranges(ranked: Sequence[FinishedTrial], top: int) -> tuple[GroupLr, ...]:
    out = []
    for label in sorted({label for r in ranked for label in r.config.groups}):
        every = [_lr(r, label) for r in ranked]
        every_lr = [x for x in every if x is not None]
        best_lr = [x for x in every[:top] if x is not None]
        if best_lr:
            out.append(
                GroupLr(
                    label, min(best_lr), max(best_lr), len(best_lr), min(every_lr), max(every_lr)
                )
            )
    return tuple(out)


def _by_scheme(
    study: optuna.Study,
) -> dict[str, tuple[str, list[optuna.trial.FrozenTrial]]]:
    """Every trial groupwise sampled, by its scheme (key -> (display name, trials)); replays
    and retried attempts included, so the counts per scheme add up to the study's."""
    out: dict[str, tuple[str, list[optuna.trial.FrozenTrial]]] = {}
    for t in study.get_trials(deepcopy=False):
        if CONFIG_ATTR in t.user_attrs:
            scheme = config_of(t.user_attrs[CONFIG_ATTR]).scheme
            out.setdefault(scheme.key, (str(scheme), []))[1].append(t)
    return out


def _lr(row: FinishedTrial, label: str) -> float | None:
    group = row.config.groups.get(label)
    value = group.hyperparameters.get("lr") if group else None
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class StudySummary:
    study: str
    search_space: str
    complete: int
    pruned: int
    failed: int
    best: float | None
    best_trial: int | None
    median: float | None
    trials_to_baseline: int | None  # trials (in order) until one matched the first study's best
    # how its task differs from the baseline's, though the same task: its options or the seed
    # of its data ("" when the same); values of studies on different data do not compare
    task_differs: str = ""


def compare_studies(studies: Sequence[str], storage: Source = None) -> list[StudySummary]:
    """Studies on the same task and metric side by side; the first is the baseline."""
    storage = opened(storage)  # once, not once per study
    loaded = [open_study(name, storage) for name in studies]
    identity = [
        (s.user_attrs.get(TASK_ATTR), s.user_attrs.get(METRIC_ATTR), s.direction.name.lower())
        for s in loaded
    ]
    for name, ident in zip(studies[1:], identity[1:], strict=True):
        if ident != identity[0]:
            raise StudyError(
                f"study {name!r} ran task {ident[0]!r} on {ident[1]} ({ident[2]}); "
                f"{studies[0]!r} ran {identity[0][0]!r} on {identity[0][1]} ({identity[0][2]}). "
                "Compare studies of the same task, metric and direction"
            )
    direction = identity[0][2]
    sign = 1.0 if direction == "minimize" else -1.0
    summaries = []
    baseline_best: float | None = None
    baseline_task = _task_record(loaded[0])
    for name, study in zip(studies, loaded, strict=True):
        rows = trained_trials(study)
        ranked = best_first(rows, direction)
        best, median = _stats([r.value for r in ranked if r.value is not None], direction)
        if baseline_best is None:
            baseline_best = best
        reach = None if baseline_best is None else _trials_to(rows, baseline_best, sign)
        counts = tally(study.get_trials(deepcopy=False), direction, voided_of(study.user_attrs))
        summaries.append(
            StudySummary(
                name,
                str(study.user_attrs.get(SPACE_ATTR, "?")),
                counts.complete,
                counts.pruned,
                counts.failed,
                best,
                ranked[0].number if ranked else None,
                median,
                reach,
                "; ".join(differences(baseline_task, _task_record(study))),
            )
        )
    return summaries


def _task_record(study: optuna.Study) -> dict[str, Any]:
    """The task as the study's launch recorded it: name, options and the seed of its data."""
    record = study.user_attrs.get(IDENTITY_ATTR)
    if not isinstance(record, dict) or not isinstance(record.get("task"), dict):
        return {}  # an older groupwise's study: nothing recorded to compare
    task = record["task"]
    return {**task, "data_seed": task.get("data_seed", record.get("seed"))}


def _trials_to(rows: Sequence[FinishedTrial], target: float, sign: float) -> int | None:
    """How many trials (in order) until one reached ``target`` (``sign``: 1 to minimize)."""
    ordered = sorted(rows, key=lambda r: r.number)
    hits = (
        i + 1
        for i, r in enumerate(ordered)
        if r.value is not None and sign * r.value <= sign * target
    )
    return next(hits, None)
