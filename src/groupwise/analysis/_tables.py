"""The tables groupwise shows, each defined once: the CLI renders them with rich, the report
as HTML, so both always say the same thing in the same columns."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from groupwise.analysis._best import BestTrial, StudyStatus
from groupwise.analysis._compare import (
    TENTATIVE_BELOW,
    Comparison,
    OptimizerSummary,
    StudySummary,
)

__all__ = [
    "Table",
    "best_table",
    "lr_table",
    "optimizer_table",
    "scheme_table",
    "status_table",
    "studies_table",
]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self.rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    return Table(tuple(columns), tuple(tuple(fmt(v) for v in row) for row in rows))


def status_table(statuses: Sequence[StudyStatus]) -> Table:
    counts = ("complete", "pruned", "failed", "retried", "repeats", "seeded", "voided", "running")
    return _table(
        ("study", "task", "metric", *counts, "best", "trial"),
        [
            (
                s.study,
                s.task,
                f"{s.metric} ({s.direction[:3]})",
                s.counts.complete,
                s.counts.pruned,
                s.counts.failed,
                s.counts.retried,
                s.counts.replayed,
                s.counts.seeded,
                s.counts.voided,
                s.counts.running,
                s.counts.best_value,
                s.counts.best_trial,
            )
            for s in statuses
        ],
    )


TENTATIVE = f"tentative (n < {TENTATIVE_BELOW})"


def scheme_table(result: Comparison) -> Table:
    metric = f"{result.metric} ({result.direction[:3]})"
    return _table(
        ("scheme", "complete (n)", "pruned", "failed", f"best {metric}", "median", "note"),
        [
            (r.scheme, r.complete, r.pruned, r.failed, r.best, r.median, _tentative(r.tentative))
            for r in result.by_scheme
        ],
    )


def schedule_table(result: Comparison) -> Table:
    metric = f"{result.metric} ({result.direction[:3]})"
    return _table(
        ("schedule", "complete (n)", "pruned", "failed", f"best {metric}", "median", "note"),
        [
            (r.schedule, r.complete, r.pruned, r.failed, r.best, r.median, _tentative(r.tentative))
            for r in result.by_schedule
        ],
    )


def _tentative(flag: bool) -> str:
    return TENTATIVE if flag else ""


def optimizer_table(result: Comparison) -> Table:
    metric = f"{result.metric} ({result.direction[:3]})"

    def wins(o: OptimizerSummary) -> str:
        if not o.wins:
            return ""
        return f"yes, {TENTATIVE}" if o.tentative else "yes"

    return _table(
        ("group", "optimizer", "complete (n)", f"best {metric}", "median", "wins"),
        [
            (o.label, o.optimizer, o.complete, o.best, o.median, wins(o))
            for o in result.by_optimizer
        ],
    )


def lr_table(result: Comparison) -> Table:
    return _table(
        ("group", f"lr in the top {result.top}", "of them", "lr tried"),
        [
            (
                g.label,
                f"{g.top_low:.3g} .. {g.top_high:.3g}",
                g.top_count,
                f"{g.all_low:.3g} .. {g.all_high:.3g}",
            )
            for g in result.lr
        ],
    )


def studies_table(summaries: Sequence[StudySummary]) -> Table:
    baseline = summaries[0].study if summaries else "the first"
    return _table(
        (
            "study",
            "search space",
            "complete",
            "pruned",
            "failed",
            "best",
            "trial",
            "median",
            f"trials to reach {baseline}'s best",
        ),
        [
            (
                s.study,
                Path(s.search_space).name,
                s.complete,
                s.pruned,
                s.failed,
                s.best,
                s.best_trial,
                s.median,
                s.trials_to_baseline,
            )
            for s in summaries
        ],
    )


def best_table(rows: Sequence[BestTrial]) -> Table:
    def groups(row: BestTrial) -> str:
        parts = []
        for label, g in row.config.groups.items():
            lr = g.hyperparameters.get("lr")
            parts.append(
                f"{label}: {g.optimizer} lr={lr:.3g}"
                if isinstance(lr, float)
                else f"{label}: {g.optimizer}"
            )
        return "; ".join(parts)

    def schedule(row: BestTrial) -> str:
        s, clip = row.config.schedule, row.config.grad_clip_norm
        parts = [] if s is None else [", ".join(f"{k} {fmt(v)}" for k, v in s.to_data().items())]
        parts += [] if clip is None else [f"clip {fmt(clip)}"]
        return "; ".join(parts) or "-"

    def seeds(row: BestTrial) -> str:
        c = row.confirmed
        if c is None:
            return "-"
        parts = [f"{len(c.values)} fresh"]
        parts += [f"sd {c.spread:.3g}"] if c.spread is not None else []
        parts += [f"{c.failed} failed"] if c.failed else []
        parts += [f"{c.pending} to run"] if c.pending else []
        parts += [f"search {c.search_value:.4g}"] if c.search_value is not None else []
        return ", ".join(parts)

    metric = rows[0].metric if rows else "value"
    return _table(
        ("trial", metric, "seeds", "scheme", "groups", "schedule"),
        [(r.trial, r.value, seeds(r), str(r.config.scheme), groups(r), schedule(r)) for r in rows],
    )
