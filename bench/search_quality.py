"""Does per-group search beat a tuned single optimizer? AlgoPerf's protocol on our CPU tasks.

    python bench/search_quality.py [--tasks char_lstm tiny_transformer digits_cnn tabular_mlp]
        [--seeds 0 1 2] [--trials 20] [--epochs 3] [--steps 50] [--methods ...] [--pruner none]
        [--out DIR]

For each task and seed, every search gets the same budget (trials x epochs; no pruning, so the
budget is exactly equal, unless ``--pruner`` names one) and the same seed:

- baseline: one optimizer for the whole model, tuned over the families AlgoPerf set its
  targets with (AdamW, NAdamW, SGD with Nesterov momentum), a global lr and weight decay:
  search_spaces/single_optimizer.yaml, with the default sampler (TPE on that space).
- per_group: search_spaces/per_group.yaml as shipped (the space the README tells users to
  start from; relative parametrization, recipes first), with the default sampler (staged: the
  base first); and the variants measured to choose that default (``--methods``).

Printed per task: best validation loss (mean +- sample std over seeds), the trial at which each
search first reached the baseline's final best on the same seed (median over seeds, and how
many seeds did), and the wall-clock seconds to get there. Then what the user gets: each study's
exported config (``groupwise export``: the confirmed leader where the search confirms) trained
again as a user would, on ``--fresh`` fresh training seeds (the study's data split), its mean
against what the study reported (the optimism gap), and the methods compared on those means. Over tasks: the geometric mean of
(trials a search needed to reach the baseline's final best) / (trials the baseline needed to
reach it), AlgoPerf's time-to-target ratio; a seed that never got there counts as budget + 1.
Also a plot of best-so-far per trial (OUT/search_quality.png) and every study's raw results
(OUT/search_quality.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import local_ray  # noqa: E402
from groupwise.analysis import best_trials  # noqa: E402
from groupwise.config import TrialConfig  # noqa: E402
from groupwise.execution import launch  # noqa: E402
from groupwise.plan import PRUNERS  # noqa: E402
from groupwise.store import CONFIRMS_ATTR, DUPLICATE_ATTR  # noqa: E402
from groupwise.studyfiles import read_study  # noqa: E402
from groupwise.tasks import resolve_task  # noqa: E402
from groupwise.training import DivergedError, Trainer, TrainingOptions  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")

TASKS = ["char_lstm", "tiny_transformer", "digits_cnn", "tabular_mlp"]
BASELINE = "baseline: one optimizer (AdamW/NAdamW/SGD-Nesterov)"
STAGED = "per_group.yaml, staged: the base first (the default)"
JOINT = "per_group.yaml, joint TPE"
CONFIRMED = "per_group.yaml, staged, confirm top 3 x 2 seeds"
CONFIRMED_BASELINE = "baseline, confirm top 3 x 2 seeds"
BATCHED_STAGED = "per_group.yaml, staged, workers.batch 4"
BATCH = {BATCHED_STAGED: 4}  # methods whose workers train several candidates at once
METHODS: dict[str, tuple[str, str | None, str | None]] = {
    # name: (space, sampler, the study file's warm_start; None: the study file names none,
    # so the shipped default)
    BASELINE: ("single_optimizer.yaml", None, None),
    STAGED: ("per_group.yaml", None, None),
    BATCHED_STAGED: ("per_group.yaml", None, None),
    JOINT: ("per_group.yaml", "{name: tpe}", None),
    "per_group.yaml, staged, 6 start-up": (
        "per_group.yaml",
        "{name: staged, options: {n_startup_trials: 6}}",
        None,
    ),
    "per_group.yaml, staged, base 10": (
        "per_group.yaml",
        "{name: staged, options: {base_trials: 10}}",
        None,
    ),
    "per_group.yaml, TPE 4 start-up": (
        "per_group.yaml",
        "{name: tpe, options: {n_startup_trials: 4}}",
        None,
    ),
    "per_group.yaml, random": ("per_group.yaml", "{name: random}", None),
    # Muon offered the output head too (a space's roles), against per_group.yaml's hidden
    # matrices alone (the registry's rule since 2026-12-06)
    "per_group.yaml, Muon on the head too": ("bench/spaces/per_group_muon_head.yaml", None, None),
    "per_group.yaml, GP": ("per_group.yaml", "{name: gp}", None),
    "per_group.yaml, lr sweep first": (
        "per_group.yaml",
        "{name: tpe}",
        "[adamw, lr_sweep, decay_split, muon_split, layerwise_decay]",
    ),
    # the leaders confirmed on fresh seeds (issue 24), inside the same budget of trials
    CONFIRMED: ("per_group.yaml", None, None),
    CONFIRMED_BASELINE: ("single_optimizer.yaml", None, None),
    "per_group.yaml, staged, confirm top 2 x 2 seeds": ("per_group.yaml", None, None),
}
# What each method's study file says of confirmation; every other method says "off", so a
# space's default confirmation never changes what a method measures.
CONFIRMS = {
    CONFIRMED: "{top: 3, seeds: 2}",
    CONFIRMED_BASELINE: "{top: 3, seeds: 2}",
    "per_group.yaml, staged, confirm top 2 x 2 seeds": "{top: 2, seeds: 2}",
}
# The training seeds of the fresh-seed evaluation: neither a study's (0..6) nor a
# confirmation's (groupwise.store.fresh_seeds: multiples of 7919 plus the study's).
FRESH_SEEDS = tuple(1_000_003 + r for r in range(10))
# Labels of results recorded before 2026-12-04, when per_group.yaml's default sampler was TPE
# over everything at once; read as today's labels of the same searches.
LEGACY = {
    "per_group.yaml (default sampler)": JOINT,
    "per_group.yaml, TPE 10 start-up": JOINT,
    "per_group.yaml, staged (base first)": STAGED,
}


def space_path(space: str, args: Any, tmp: Path) -> Path:
    """The method's space file; with ``--schedule``, a copy of it whose schedule section is
    that one (every trial of every method of the run: their schedule is the same)."""
    path = ROOT / space if "/" in space else ROOT / "search_spaces" / space
    if not args.schedule:
        return path
    document = yaml.safe_load(path.read_text())
    document["schedule"] = yaml.safe_load(args.schedule)
    copy = tmp / f"{path.stem}_scheduled.yaml"
    copy.write_text(yaml.safe_dump(document, sort_keys=False))
    return copy


def study_text(name: str, task: str, method: str, args: Any, seed: int, tmp: Path) -> str:
    space, sampler, warm_start = METHODS[method]
    lines = [
        f"name: {name}",
        # each seed its own split of the data as well as its own search, as this benchmark
        # has measured from the start (the study's seed no longer splits the data)
        f"task: {{name: '{task}', data_seed: {seed}}}",
        f"search_space: {space_path(space, args, tmp)}",
        f"budget: {{trials: {args.trials}}}",
        f"training: {{epochs: {args.epochs}, steps_per_epoch: {args.steps}, batch_size: 64}}",
        "workers: {count: 2, cpus_per_trial: 1, reproducible: true, "
        f"batch: {BATCH.get(method, 1)}}}",
        f"seed: {seed}",
        f"confirm: {CONFIRMS.get(method, 'off')}",
    ]
    if args.pruner != "default":  # "default": the study file names none, as users run it
        lines.append(f"pruner: {args.pruner}")
    if sampler is not None:
        lines.append(f"sampler: {sampler}")
    if warm_start is not None:
        lines.append(f"warm_start: {warm_start}")
    return "\n".join(lines) + "\n"


def run_one(task: str, method: str, seed: int, args: argparse.Namespace, tmp: Path) -> dict:
    name = f"{task.replace(':', '.')}-{list(METHODS).index(method)}-{seed}"
    path = tmp / f"{name}.yaml"
    path.write_text(study_text(name, task, method, args, seed, tmp))
    storage = f"sqlite:///{tmp}/{name}.db"
    started = time.perf_counter()
    launch(read_study(path), storage=storage)
    wall = time.perf_counter() - started
    trials = sorted(
        optuna.load_study(study_name=name, storage=storage).get_trials(), key=lambda t: t.number
    )
    best, curve, clock = float("inf"), [], []
    begin = min((t.datetime_start for t in trials if t.datetime_start), default=None)
    for t in trials:
        if DUPLICATE_ATTR in t.user_attrs:
            continue  # a replay spends no budget: the curve is over trained trials
        searched = CONFIRMS_ATTR not in t.user_attrs  # a confirmation finds no new best
        if searched and t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
            best = min(best, t.value)
        curve.append(best)
        end = t.datetime_complete or t.datetime_start
        clock.append((end - begin).total_seconds() if end and begin else math.nan)
    exported = best_trials(name, storage, 1)[0]  # what `groupwise export` writes
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "best": best,
        # what the study says its exported config scores (a confirmed leader's mean), and
        # what that config scores trained again on fresh seeds
        "reported": exported.value,
        "confirmed": exported.confirmed is not None,
        "fresh": fresh_values(task, seed, exported.config, args),
        "curve": curve,
        "clock": clock,
        "wall_s": wall,
        "pruner": args.pruner,
        "schedule": args.schedule
        or "each space's own",  # "none" in rows before 2026-12-06: constant
        "epochs": sum(
            len(t.intermediate_values) for t in trials if DUPLICATE_ATTR not in t.user_attrs
        ),
    }


def fresh_values(task: str, seed: int, config: TrialConfig, args: argparse.Namespace) -> list:
    """The exported config trained again as a user trains it, in this process: the study's
    task, data split (its seed) and training, from ``args.fresh`` fresh training seeds; the
    last epoch's val_loss of each (inf where it diverged)."""
    data = resolve_task(task, seed=seed)
    options = TrainingOptions(epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64)
    values = []
    for fresh in FRESH_SEEDS[: args.fresh]:
        try:
            trainer = Trainer(data, config, seed=fresh, options=options)
            for _ in range(args.epochs):
                report = trainer.run_epoch()
            values.append(report.metrics["val_loss"])
        except DivergedError:
            values.append(math.inf)
    return values


def reach(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v <= target * (1 + 1e-9)), None)


def baseline_of(results: list[dict], study: dict) -> dict | None:
    """The baseline study of ``study``'s task and seed, or None in a run without baselines."""
    return next(
        (
            b
            for b in results
            if b["method"] == BASELINE and (b["task"], b["seed"]) == (study["task"], study["seed"])
        ),
        None,
    )


def ratios(results: list[dict], method: str, trials: int) -> dict[str, list[float]]:
    """Per task: (trials ``method`` needed to reach the baseline's final best) / (trials the
    baseline needed to reach it), per seed; never reached counts as budget + 1."""
    out: dict[str, list[float]] = {}
    for r in results:
        if r["method"] != method:
            continue
        base = baseline_of(results, r)
        if base is None:
            continue
        mine = reach(r["curve"], base["best"]) or trials + 1
        theirs = reach(base["curve"], base["best"]) or trials + 1
        out.setdefault(r["task"], []).append(mine / theirs)
    return out


def budget_fractions(results: list[dict], method: str, trials: int) -> dict[str, list[float]]:
    """Per task: (trials ``method`` needed to reach the baseline's final best) / budget."""
    out: dict[str, list[float]] = {}
    for r in results:
        if r["method"] != method:
            continue
        base = baseline_of(results, r)
        if base is None:
            continue
        out.setdefault(r["task"], []).append(
            (reach(r["curve"], base["best"]) or trials + 1) / trials
        )
    return out


def geomean(values: list[float]) -> float:
    return math.exp(statistics.mean(math.log(v) for v in values))


def score(per_task: dict[str, list[float]]) -> float:
    """The geometric mean over tasks of each task's geometric mean over seeds."""
    return geomean([geomean(v) for v in per_task.values()])


def interval(per_task: dict[str, list[float]], draws: int = 4000) -> tuple[float, float]:
    """A 90% bootstrap interval of :func:`score`: each task's seeds drawn again with
    replacement. With few seeds it says how far the score can move by the luck of the seeds."""
    rng = random.Random(0)
    scores = sorted(
        score({t: rng.choices(v, k=len(v)) for t, v in per_task.items()}) for _ in range(draws)
    )
    return scores[int(0.05 * draws)], scores[int(0.95 * draws) - 1]


def equal_search_scores(trials: int, draws: int = 20000) -> tuple[float, float]:
    """What the two measures below give a search exactly as good as the baseline: both draw
    each trial's value from one distribution (simulated). The first is above 1 because the
    target is the baseline's own best: the baseline reaches it by definition, the other search
    only when it does at least as well (half the time)."""
    rng = random.Random(0)
    own, budget = [], []
    for _ in range(draws):
        theirs = [rng.random() for _ in range(trials)]
        mine = [rng.random() for _ in range(trials)]
        target = min(theirs)
        took = reach(mine, target) or trials + 1
        own.append(math.log(took / (theirs.index(target) + 1)))
        budget.append(math.log(took / trials))
    return math.exp(statistics.mean(own)), math.exp(statistics.mean(budget))


def summarize(results: list[dict], tasks: list[str], methods: list[str], trials: int) -> None:
    width = max(len(m) for m in methods)
    for task in tasks:
        print(f"\n{task}")
        print(
            f"  {'search':<{width}} {'best val_loss (mean +- std)':>28} {'reached baseline best at trial':>31} "
            f"{'seconds to it':>14}"
        )
        mine = [r for r in results if r["task"] == task]
        base = {r["seed"]: r["best"] for r in mine if r["method"] == BASELINE}
        for method in methods:
            rows = [r for r in mine if r["method"] == method]
            if not rows:
                continue
            bests = [r["best"] for r in rows]
            spread = statistics.stdev(bests) if len(bests) > 1 else 0.0
            paired = [r for r in rows if r["seed"] in base]  # none in a run without baselines
            at = [reach(r["curve"], base[r["seed"]]) for r in paired]
            got = [n for n in at if n is not None]
            secs = [r["clock"][n - 1] for r, n in zip(paired, at, strict=True) if n is not None]
            reached = (
                f"{statistics.median(got):.0f} ({len(got)}/{len(at)} seeds)"
                if got
                else f"never (0/{len(at)})"
            )
            clock = f"{statistics.median(secs):.0f}" if secs else "-"
            print(
                f"  {method:<{width}} {statistics.mean(bests):>20.4f} +- {spread:.4f} {reached:>31}"
                f" {clock:>14}"
            )
    equal = equal_search_scores(trials)
    for title, measure, reference in [
        ("(the baseline's own)", ratios, equal[0]),
        ("(budget); never reached counts as budget + 1", budget_fractions, equal[1]),
    ]:
        print(
            f"\ngeometric mean over tasks of (trials to reach the baseline's final best) / {title}"
            f" (a search exactly as good as the baseline: {reference:.2f}):"
        )
        for method in methods:
            per_task = measure(results, method, trials) if method != BASELINE else {}
            if per_task:
                low, high = interval(per_task)
                detail = ", ".join(f"{t} {geomean(v):.2f}" for t, v in per_task.items())
                print(
                    f"  {method:<{width}} {score(per_task):.2f} (90% bootstrap over seeds "
                    f"{low:.2f}-{high:.2f}; {detail})"
                )


def paired(diffs: list[float]) -> str:
    """A mean difference with its paired standard error."""
    if len(diffs) < 2:
        return f"{statistics.mean(diffs):+.4f}"
    error = statistics.stdev(diffs) / math.sqrt(len(diffs))
    return f"{statistics.mean(diffs):+.4f} ({error:.4f})"


def fresh_summary(results: list[dict], tasks: list[str], methods: list[str]) -> None:
    """What the user gets: per task and method, the study's reported best, its exported
    config's mean over the fresh seeds, the optimism gap (fresh mean - reported; paired
    standard error), and the fresh means against the baseline's (paired by seed)."""
    rows = [r for r in results if r.get("fresh")]
    if not rows:
        return
    print(
        "\nwhat the user gets: the exported config trained again on "
        f"{len(rows[0]['fresh'])} fresh seeds (mean over them, then mean +- std over studies)"
    )
    width = max(len(m) for m in methods)
    for task in tasks:
        print(f"\n{task}")
        print(
            f"  {'search':<{width}} {'reported':>9} {'fresh mean':>18} {'gap (s.e.)':>18} "
            f"{'fresh - baseline (s.e.)':>24} {'seeds better':>13}"
        )
        mine = [r for r in rows if r["task"] == task]
        base = {r["seed"]: statistics.mean(r["fresh"]) for r in mine if r["method"] == BASELINE}
        for method in methods:
            studies = [r for r in mine if r["method"] == method]
            if not studies:
                continue
            fresh = [statistics.mean(r["fresh"]) for r in studies]
            gaps = [f - r["reported"] for f, r in zip(fresh, studies, strict=True)]
            spread = statistics.stdev(fresh) if len(fresh) > 1 else 0.0
            against = [
                f - base[r["seed"]]
                for f, r in zip(fresh, studies, strict=True)
                if r["seed"] in base
            ]
            vs = paired(against) if against and method != BASELINE else "-"
            won = f"{sum(d < 0 for d in against)}/{len(against)}" if method != BASELINE else "-"
            print(
                f"  {method:<{width}} {statistics.mean(r['reported'] for r in studies):>9.4f} "
                f"{statistics.mean(fresh):>9.4f} +- {spread:.4f} {paired(gaps):>18} {vs:>24} "
                f"{won:>13}"
            )


def plot(results: list[dict], tasks: list[str], methods: list[str], out: Path, tag: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for method in methods:
            rows = [r for r in results if r["task"] == task and r["method"] == method]
            if not rows:
                continue
            n = min(len(r["curve"]) for r in rows)
            mean = [statistics.mean(r["curve"][i] for r in rows) for i in range(n)]
            ax.plot(range(1, n + 1), mean, label=method, lw=2 if method == BASELINE else 1.2)
        ax.set_title(f"{task}", fontsize=10)
        ax.set_xlabel("trial")
        ax.set_ylabel("best val_loss so far (mean over seeds)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / f"search_quality{tag}.png", dpi=110)
    print(f"\nplot: {out / f'search_quality{tag}.png'}")


def reused_baselines(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    """The baseline studies of ``--baseline-from``: one per task and seed asked for, each of
    this run's budget, or a one-line error saying which is missing."""
    earlier = merged(args.baseline_from, parser, "--baseline-from")
    found = {(r["task"], r["seed"]): r for r in earlier if r["method"] == BASELINE}
    for task in args.tasks:
        for seed in args.seeds:
            row = found.get((task, seed))
            if row is None or len(row["curve"]) != args.trials:
                parser.error(
                    f"--baseline-from {' '.join(map(str, args.baseline_from))}: no baseline "
                    f"study of {task} seed {seed} with {args.trials} trials; run without "
                    "--baseline-from to make one"
                )
    return [found[(task, seed)] for task in args.tasks for seed in args.seeds]


def merged(
    paths: list[Path], parser: argparse.ArgumentParser, flag: str = "--summarize"
) -> list[dict]:
    """The studies of earlier runs' JSON files, as one run (more seeds, or more methods over
    the same baselines); a study in two files counts once, and must be the same in both, and
    every study must have had the same pruner (rows older than --pruner pruned nothing)."""
    studies: dict[tuple[str, str, int], dict] = {}
    pruners: dict[str, Path] = {}
    for path in paths:
        try:
            rows = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            parser.error(f"{flag} {path}: {e}")
        for row in rows:
            kind = (
                f"{row.setdefault('pruner', 'none')}, schedule {row.setdefault('schedule', 'none')}"
            )
            pruners.setdefault(kind, path)
            if len(pruners) > 1:
                found = "; ".join(f"pruner {k} in {v}" for k, v in pruners.items())
                parser.error(
                    f"{flag}: studies pruned or scheduled differently are not one run: {found}"
                )
            row["method"] = LEGACY.get(row["method"], row["method"])
            key = (row["task"], row["method"], row["seed"])
            if studies.setdefault(key, row)["curve"] != row["curve"]:
                parser.error(f"{flag} {path}: {key} differs from an earlier file's")
    return list(studies.values())


def show(results: list[dict], args: argparse.Namespace) -> None:
    """Print the summary of ``results`` and plot it, tasks and methods in the bench's order."""
    seen = dict.fromkeys(r["task"] for r in results)
    tasks = [t for t in TASKS if t in seen] + [t for t in seen if t not in TASKS]
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    trials = max(len(r["curve"]) for r in results)
    summarize(results, tasks, methods, trials)
    fresh_summary(results, tasks, methods)
    plot(results, tasks, methods, args.out, args.tag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=[BASELINE, STAGED],
        choices=list(METHODS),
    )
    parser.add_argument(
        "--baseline-from",
        type=Path,
        nargs="+",
        help="earlier runs' JSON files whose baseline studies to reuse (the same tasks, seeds "
        "and budget; the baseline is deterministic under reproducible rounds), to measure a "
        "change to per_group.yaml in half the time",
    )
    parser.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        help="summarize earlier runs' JSON files as one run (e.g. seeds run on different "
        "days) instead of running studies",
    )
    parser.add_argument(
        "--pruner",
        default="none",
        choices=["default", *PRUNERS.names()],
        help="the study files' pruner: none (the default here: every search trains exactly "
        "the same epochs), a registry name, or 'default' to name none, as a user's file does",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep each study's file and database (DIR/<task>-<method index>-<seed>.db) for "
        "`groupwise best`, instead of a temporary folder",
    )
    parser.add_argument(
        "--schedule",
        default="",
        help="the lr schedule every study of the run trains with, in place of its space's "
        "schedule: section, e.g. '{decay: constant}' (a constant lr, as every space before "
        "2026-12-06) (default: each space's own: warmup + cosine for the shipped spaces)",
    )
    parser.add_argument(
        "--fresh",
        type=int,
        default=5,
        choices=range(len(FRESH_SEEDS) + 1),
        metavar=f"0..{len(FRESH_SEEDS)}",
        help="train each study's exported config again on this many fresh seeds (0: not)",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="run only the methods named, no baseline study: for a run compared with an "
        "earlier run's studies (e.g. confirmations on top of the same search), at half the cost",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tag", default="", help="suffix of the output files")
    args = parser.parse_args()
    if BASELINE not in args.methods and not args.no_baseline:
        args.methods.insert(0, BASELINE)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.summarize:
        show(merged(args.summarize, parser), args)
        return
    print(
        f"bench/search_quality.py: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}; {args.trials} trials x {args.epochs} epochs x "
        f"{args.steps} steps per study, seeds {args.seeds}"
    )
    results: list[dict[str, Any]] = []
    if args.baseline_from:  # checked before Ray starts
        results = reused_baselines(args, parser)
        args.methods.remove(BASELINE)
    local_ray.start()
    started = time.perf_counter()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    folder = contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory()
    with folder as tmp:
        for task in args.tasks:
            for seed in args.seeds:
                for method in args.methods:
                    r = run_one(task, method, seed, args, Path(tmp))
                    results.append(r)
                    # written as it goes, so that an interrupted run keeps what it measured
                    (args.out / f"search_quality{args.tag}.json").write_text(
                        json.dumps(results, indent=1)
                    )
                    print(
                        f"  {task} seed {seed} {method}: best {r['best']:.4f}, {r['wall_s']:.0f} s",
                        flush=True,
                    )
    (args.out / f"search_quality{args.tag}.json").write_text(json.dumps(results, indent=1))
    show(results, args)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
