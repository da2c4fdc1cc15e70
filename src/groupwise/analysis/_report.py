"""``groupwise report``: one HTML page and PNG plots for a finished study.

Plots (each a PNG beside ``index.html``, and inline SVG in the page): the optimization history
with the best so far; best and median value by scheme; each group's lr against the objective,
coloured by optimizer; Optuna's parameter importances; the learning curves of the top trials
(from groupwise's epoch table). The page adds the comparison tables of ``groupwise compare``
and the best trial's config as YAML.
"""

from __future__ import annotations

import html
import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from groupwise import _yaml
from groupwise.analysis._best import (
    BestTrial,
    FinishedTrial,
    best_first,
    best_trials,
    study_status,
    trained_trials,
)
from groupwise.analysis._compare import Comparison, compare
from groupwise.analysis._tables import (
    lr_table,
    optimizer_table,
    schedule_table,
    scheme_table,
    status_table,
)
from groupwise.errors import ConfigError
from groupwise.store import (
    TRANSFER_ATTR,
    TRANSFER_CHECK_ATTR,
    epochs_of,
    has_run_tables,
    open_study,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PLOTS", "Report", "write_report"]

PLOTS = ("history", "schemes", "lr", "importances", "curves")


@dataclass(frozen=True)
class Report:
    directory: Path
    page: Path
    plots: tuple[Path, ...]


def write_report(study: str, directory: str | Path, storage: str | None = None) -> Report:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    loaded = open_study(study, storage)
    result = compare(study, storage)
    best = best_trials(study, storage, top=1)[0]
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write the report to {directory}: {e.strerror or e}") from e
    trials = trained_trials(loaded)
    labels = {label for r in trials for label in r.config.groups}
    drawers: dict[str, tuple[str, Callable[[Figure], None]]] = {
        "history": ("Optimization history", _on_axes(lambda ax: _history(ax, trials, result))),
        "schemes": ("Each scheme's trials: best, median, all", _by_scheme(trials, result)),
        "lr": ("Each group's lr against the objective, per optimizer", _by_kind(trials, result)),
        "importances": (
            "Importances per group (Optuna's default evaluator, PED-ANOVA)",
            _on_axes(lambda ax: _importances(ax, loaded, labels)),
        ),
        "curves": (
            f"Learning curves of the top {result.top} trials",
            _on_axes(lambda ax: _curves(ax, study, storage, trials, result)),
        ),
    }
    figures, paths = [], []
    for name, (title, draw) in drawers.items():
        fig = plt.figure(figsize=(8, 4.5))
        with warnings.catch_warnings():  # matplotlib's layout notes are not the user's to read
            warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")
            draw(fig)
            fig.suptitle(title, fontsize=10, wrap=True)
            fig.tight_layout()
            path = directory / f"{name}.png"
            fig.savefig(path, dpi=120)
            svg = io.StringIO()
            fig.savefig(svg, format="svg")
        plt.close(fig)
        figures.append((title, name, svg.getvalue()))
        paths.append(path)
    page = directory / "index.html"
    status = study_status(storage, study)
    summary = status_table(status).to_html()
    page.write_text(_page(summary, result, best, figures, _transfer_section(loaded)))
    return Report(directory, page, tuple(paths))


def _history(ax: Axes, rows: Sequence[FinishedTrial], result: Comparison) -> None:
    complete = [(r.number, r.value) for r in rows if r.value is not None]
    pick = min if result.direction == "minimize" else max
    ax.scatter([n for n, _ in complete], [v for _, v in complete], s=14, label="complete")
    pruned = [r.trial for r in rows if r.state == TrialState.PRUNED and r.trial.intermediate_values]
    ax.scatter(
        [t.number for t in pruned],
        [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
        s=14,
        marker="x",
        alpha=0.6,
        label="pruned (last report)",
    )
    best: float | None = None
    line = []
    for number, value in sorted(complete):
        best = value if best is None else pick(best, value)
        line.append((number, best))
    if line:
        ax.step(*zip(*line, strict=True), where="post", color="black", label="best so far")
    _whole_numbers(ax)
    ax.set_xlabel("trial")
    ax.set_ylabel(result.metric)
    ax.legend(fontsize=8)


def _whole_numbers(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _on_axes(draw: Callable[[Axes], None]) -> Callable[[Figure], None]:
    """A plot of one panel."""
    return lambda fig: draw(fig.add_subplot())


def _by_scheme(rows: Sequence[FinishedTrial], result: Comparison) -> Callable[[Figure], None]:
    return _on_axes(lambda ax: _schemes(ax, rows, result))


def _schemes(ax: Axes, rows: Sequence[FinishedTrial], result: Comparison) -> None:
    """Per scheme, every complete trial's value (a dot), the median (a bar) and the best (a
    diamond), on an axis that spans the values, not from 0: losses of 2.0 and 2.7 must look
    different."""
    shown = [s for s in result.by_scheme if s.best is not None]
    values = {s.scheme: [r.value for r in rows if str(r.config.scheme) == s.scheme] for s in shown}
    names = [f"{s.scheme}\n(n={s.complete}{', tentative' if s.tentative else ''})" for s in shown]
    for y, s in enumerate(shown):
        dots = [v for v in values[s.scheme] if v is not None]
        ax.scatter(dots, [y] * len(dots), s=12, color="tab:blue", alpha=0.35, zorder=2)
    best = "lowest" if result.direction == "minimize" else "highest"
    ys = list(range(len(shown)))
    medians = [math.nan if s.median is None else float(s.median) for s in shown]
    bests = [math.nan if s.best is None else float(s.best) for s in shown]
    ax.scatter(medians, ys, marker="|", s=400, color="black", zorder=3, label="median")
    ax.scatter(bests, ys, marker="D", s=40, color="tab:red", zorder=4, label=f"best ({best})")
    ax.set_yticks(range(len(shown)), names)
    everything = [v for vs in values.values() for v in vs if v is not None]
    if everything:
        low, high = min(everything), max(everything)
        pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
        ax.set_xlim(low - pad, high + pad)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(result.metric)
    ax.legend(fontsize=8)


def _by_kind(rows: Sequence[FinishedTrial], result: Comparison) -> Callable[[Figure], None]:
    """One panel per optimizer kind: Muon's lrs and Adam's live on different scales."""

    def draw(fig: Figure) -> None:
        kinds = sorted({g.optimizer for r in rows for g in r.config.groups.values()})
        labels = sorted({label for r in rows for label in r.config.groups})
        palette = {label: f"C{i % 10}" for i, label in enumerate(labels)}  # one per group
        axes = fig.subplots(1, max(len(kinds), 1), sharey=True, squeeze=False)[0]
        for ax, kind in zip(axes, kinds, strict=False):
            _lr(ax, rows, result, kind, palette)
            ax.set_title(kind, fontsize=9)
        for ax in axes[1:]:
            ax.set_ylabel("")

    return draw


def _lr(
    ax: Axes,
    rows: Sequence[FinishedTrial],
    result: Comparison,
    kind: str,
    palette: dict[str, str],
) -> None:
    """Every ``kind`` group's lr in every complete trial, a colour per group; the top trials
    drawn large and outlined."""
    from matplotlib.ticker import NullFormatter

    labels = sorted(
        {
            label
            for r in rows
            if r.value is not None
            for label, g in r.config.groups.items()
            if g.optimizer == kind
        }
    )
    top = {r.number for r in best_first(rows, result.direction)[: result.top]}
    for r in rows:
        for label, group in r.config.groups.items():
            lr = group.hyperparameters.get("lr")
            if group.optimizer != kind or r.value is None or not isinstance(lr, int | float):
                continue
            best = r.number in top
            ax.scatter(
                lr,
                r.value,
                s=46 if best else 14,
                color=palette[label],
                edgecolors="black" if best else "none",
                alpha=1.0 if best else 0.6,
            )
    for label in labels:
        ax.scatter([], [], color=palette[label], label=f"group {label}")
    ax.scatter([], [], s=46, color="white", edgecolors="black", label=f"top {result.top}")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: labels that do not collide
    ax.set_xlabel("lr")
    ax.set_ylabel(result.metric)
    ax.legend(fontsize=7)


TOP_IMPORTANCES = 15


def _importances(ax: Axes, study: optuna.Study, labels: set[str]) -> None:
    """Optuna's importances summed per group (``<label>.lr``, ``<label>.optimizer``... are
    one bar for the group), the top 15."""
    try:
        with warnings.catch_warnings():  # "few trials in a regime": the plot says n anyway
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as e:  # too few trials, or nothing to vary
        ax.text(
            0.5, 0.5, f"not available: {e}"[:90], ha="center", va="center", transform=ax.transAxes
        )
        ax.set_axis_off()
        return
    summed: dict[str, float] = {}
    for name, value in importances.items():
        head = name.split(".", 1)[0]
        bar = f"group {head}" if head in labels else name
        summed[bar] = summed.get(bar, 0.0) + value
    shown = sorted(summed, key=summed.__getitem__, reverse=True)[:TOP_IMPORTANCES][::-1]
    ax.barh(shown, [summed[n] for n in shown])
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(f"importance (fraction of variance); top {len(shown)} of {len(summed)}")


def _curves(
    ax: Axes,
    study: str,
    storage: str | None,
    rows: Sequence[FinishedTrial],
    result: Comparison,
) -> None:
    top = [r.trial for r in best_first(rows, result.direction)[: result.top]]
    epochs: dict[int, list[tuple[int, float]]] = {}
    for row in epochs_of(storage, study) if has_run_tables(storage) else ():
        if row["metric"] is not None:
            epochs.setdefault(row["trial"], []).append((row["epoch"], row["metric"]))
    for t in top:
        points = epochs.get(t.number) or sorted(t.intermediate_values.items())
        ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=f"trial {t.number}")
    _whole_numbers(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel(result.metric)
    ax.legend(fontsize=7)


def _page(
    summary: str,
    result: Comparison,
    best: BestTrial,
    figures: Sequence[tuple[str, str, str]],
    transfer: str = "",
) -> str:
    schemes = scheme_table(result).to_html()
    if result.by_schedule:
        schemes += "<h2>By lr schedule</h2>" + schedule_table(result).to_html()
    optimizers = optimizer_table(result).to_html()
    lrs = lr_table(result).to_html()
    plots = "".join(
        f'<h2>{html.escape(title)}</h2><div class="plot">{svg[svg.index("<svg") :]}</div>'
        f'<p><a href="{name}.png">{name}.png</a></p>'
        for title, name, svg in figures
    )
    config = html.escape(_yaml.dump(best.config.to_dict()).rstrip())
    best_number = best.trial
    score = html.escape(best.summary())
    name = html.escape(result.study)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>groupwise report: {name}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px}}
.plot svg{{max-width:100%;height:auto}}pre{{background:#f4f4f4;padding:1em}}</style></head>
<body><h1>groupwise report: {name}</h1>{summary}
<h2>Best config (trial {best_number})</h2><p>{score}</p><pre>{config}</pre>{transfer}
<h2>By scheme</h2>{schemes}<h2>Which optimizer wins, per group</h2>{optimizers}
<h2>Each group's lr among the best trials</h2>{lrs}{plots}
</body></html>
"""


def _transfer_section(study: optuna.Study) -> str:
    """The best config carried to the study's transfer target, and its check there."""
    carried = study.user_attrs.get(TRANSFER_ATTR)
    if not isinstance(carried, dict):
        return ""
    target = carried["target"]
    options = ", ".join(f"{k}: {v}" for k, v in target["options"].items())
    head = (
        f"trial {carried['trial']} ({carried['value']:.6g} on the proxy) carried to "
        f"{target['name']} {{{options}}} by {carried['rule']}"
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in carried.get("notes", []))
    check = study.user_attrs.get(TRANSFER_CHECK_ATTR)
    command = f"groupwise transfer-check {html.escape(study.study_name)}"
    said = (
        f"Trained there: {html.escape(check['summary'])}"
        if isinstance(check, dict)
        else f"Not trained there yet: <code>{command}</code>"
    )
    config = html.escape(_yaml.dump(carried["config"]).rstrip())
    return (
        f"<h2>Transferred config</h2><p>{html.escape(head)}</p><p>{said}</p>"
        f"<pre>{config}</pre>" + (f"<ul>{notes}</ul>" if notes else "")
    )
