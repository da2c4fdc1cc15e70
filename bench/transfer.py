"""Tune small, transfer big: does a config searched on a narrow proxy hold on a wide model?

    python bench/transfer.py sweep [--task tabular_mlp] [--widths 64 128 256 512]
        [--lrs 1e-3 3e-3 ...] [--epochs 5] [--steps 20]
    python bench/transfer.py headline [--task tabular_mlp] [--proxy 64] [--target 512]
        [--seeds 0 1 2] [--trials 20] [--fresh 3] [--epochs 5] [--steps 20]

``sweep`` (the classic figure): one AdamW config at each base lr, carried from the narrowest
width to every other by each rule, trained at each width (one seed, in this process):
validation loss against the base lr per width, for the standard model with one lr everywhere
(rule none), the μP model (parametrization: mup, rule mup) and the standard model with
Everett et al.'s per-layer rule (sp-per-layer). Where each width's optimum sits says whether
the rule carries the lr.

``headline``: per seed, at the target width, what each way to get a config scores trained
again on ``--fresh`` fresh seeds (the user's view):
- transferred: per_group.yaml searched at the proxy width (N trials), its best carried by
  sp-per-layer (zero trials at the target);
- copied: the same proxy config unchanged (rule none);
- direct: per_group.yaml searched at the target (N trials);
- single: single_optimizer.yaml searched at the target (N trials).
``--proxy-trials M`` gives the proxy search its own budget; ``--methods`` runs some rows only,
and ``--against FILE...`` compares them with earlier headlines' direct searches (same seeds).
Compute: each search's wall-clock, and its parameter-steps (trainable parameters x optimizer
steps, summed over trials: the FLOPs that matter, up to a constant). Results and plots go to
bench/results/transfer_*.

``structures`` [--k 2] [--key kinds|muon]: the lrs carried, the structure chosen at the
target. The proxy search as in ``headline``; its best config of each of its ``--k`` best
structures (``kinds``: scheme and each group's optimizer kind; ``muon``: with Muon or without),
carried by the rule, trained once at the target (or at ``--decide-at W``, a width between)
on the search's seed; the best of them carried to the target and trained there on fresh
seeds. ``--also SPACE --also-trials M``: a second proxy search in SPACE (a space of one
structure, e.g. muon_split.yaml) whose best joins the candidates, so a structure the first
search passed over gets its lrs tuned at the proxy. Compute: the proxy searches and the
trials at the width that decides.
Compare with a ``headline`` run of the same arguments (its direct search).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import local_ray  # noqa: E402
from groupwise.analysis import best_trials  # noqa: E402
from groupwise.config import TrialConfig  # noqa: E402
from groupwise.execution import launch  # noqa: E402
from groupwise.registry import key_values  # noqa: E402
from groupwise.studyfiles import read_study  # noqa: E402
from groupwise.tasks import resolve_task  # noqa: E402
from groupwise.training import DivergedError, Trainer, TrainingOptions  # noqa: E402
from groupwise.transfer import transfer  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")
OUT = ROOT / "bench" / "results"
FRESH_SEEDS = tuple(1_000_003 + r for r in range(10))  # as search_quality.py's
METHODS = ("transferred", "copied", "direct", "single")
SWEEP_RULES = {  # label: (task options, rule)
    "standard, one lr (none)": ({}, "none"),
    "muP (mup)": ({"parametrization": "mup"}, "mup"),
    "standard, per-layer (sp-per-layer)": ({}, "sp-per-layer"),
}


def trained(task: Any, config: TrialConfig, seed: int, options: TrainingOptions) -> float:
    """The last epoch's val_loss of ``config`` trained on ``task`` (inf where it diverged)."""
    try:
        trainer = Trainer(task, config, seed=seed, options=options)
        for _ in range(options.epochs):
            report = trainer.run_epoch()
        loss = float(report.metrics["val_loss"])
        return loss if math.isfinite(loss) else math.inf
    except DivergedError:
        return math.inf


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    options = TrainingOptions(epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64)
    rows = []
    for label, (extra, rule) in SWEEP_RULES.items():
        if args.rules and rule not in args.rules:
            continue
        base = {**args.options, **extra, "base_width": args.widths[0]} if extra else args.options
        tasks = {w: resolve_task(args.task, {**base, "width": w}) for w in args.widths}
        proxy = tasks[args.widths[0]].make_model()
        for lr in args.lrs:
            config = TrialConfig.from_dict(
                {"scheme": "single", "groups": {"all": {"optimizer": "adamw", "lr": lr}}}
            )
            for w, task in tasks.items():
                carried = transfer(config, proxy, task.make_model(), rule)
                loss = trained(task, carried, 0, options)
                rows.append({"rule": label, "lr": lr, "width": w, "val_loss": loss})
                print(f"  {label:<36} lr {lr:<8g} width {w:<5} val_loss {loss:.4f}", flush=True)
    return {"task": args.task, "widths": args.widths, "rows": rows}


def study(
    name: str,
    task: str,
    width: int,
    space: str,
    seed: int,
    args: argparse.Namespace,
    tmp: Path,
    trials: int | None = None,
) -> tuple[TrialConfig, float, float]:
    """A search at one width (``trials``, else ``--trials``): its exported config, wall-clock
    and parameter-steps."""
    path = tmp / f"{name}.yaml"
    options = json.dumps({**args.options, "width": width})
    path.write_text(
        f"name: {name}\ntask: {{name: {task}, options: {options}, data_seed: {seed}}}\n"
        f"search_space: {ROOT / 'search_spaces' / space}\nbudget: {{trials: {trials or args.trials}}}\n"
        f"training: {{epochs: {args.epochs}, steps_per_epoch: {args.steps}, batch_size: 64}}\n"
        f"workers: {{count: 2, cpus_per_trial: 1, reproducible: true}}\nseed: {seed}\n"
        "confirm: off\n"
    )
    storage = f"sqlite:///{tmp}/{name}.db"
    started = time.perf_counter()
    launch(read_study(path), storage=storage)
    wall = time.perf_counter() - started
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    steps = sum(len(t.intermediate_values) for t in trials) * args.steps
    model = resolve_task(task, {**args.options, "width": width}).make_model()
    params = sum(p.numel() for p in model.parameters())
    return best_trials(name, storage, 1)[0].config, wall, float(steps * params)


def headline(args: argparse.Namespace) -> dict[str, Any]:
    options = TrainingOptions(epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            t = args.task
            proxy = resolve_task(t, {**args.options, "width": args.proxy}).make_model()
            target_task = resolve_task(t, {**args.options, "width": args.target}, seed=seed)
            configs: dict[str, tuple[TrialConfig, float, float]] = {}
            if {"transferred", "copied"} & set(args.methods):
                name, n = f"proxy{seed}", args.proxy_trials
                found, p_wall, p_cost = study(
                    name, t, args.proxy, "per_group.yaml", seed, args, Path(tmp), n
                )
                carried = transfer(found, proxy, target_task.make_model(), args.rule)
                configs["transferred"] = (carried, p_wall, p_cost)
                configs["copied"] = (found, p_wall, p_cost)
            for method, space in (
                ("direct", "per_group.yaml"),
                ("single", "single_optimizer.yaml"),
            ):
                if method in args.methods:
                    name = f"{method}{seed}"
                    configs[method] = study(name, t, args.target, space, seed, args, Path(tmp))
            for method in args.methods:
                config, wall, cost = configs[method]
                fresh = [
                    trained(target_task, config, s, options) for s in FRESH_SEEDS[: args.fresh]
                ]
                row = {
                    "seed": seed,
                    "method": method,
                    "fresh": fresh,
                    "wall_s": wall,
                    "cost": cost,
                    "config": config.to_dict(),
                }
                rows.append(row)
                print(
                    f"  seed {seed} {method:<12} fresh {statistics.fmean(fresh):.4f} {wall:6.0f} s",
                    flush=True,
                )
    return {
        "task": args.task,
        "proxy": args.proxy,
        "target": args.target,
        "trials": args.trials,
        "proxy_trials": args.proxy_trials or args.trials,
        "rows": rows,
    }


def _structure(config: TrialConfig, key: str) -> str:
    """What a rule does not carry (``--key kinds``: the scheme and each group's optimizer
    kind), or the part of it that changes with width (``--key muon``: whether any group
    trains with Muon, whose gain grows with the matrices' size)."""
    if key == "muon":
        return str(any(group.optimizer == "muon" for group in config.groups.values()))
    kinds = sorted((label, group.optimizer) for label, group in config.groups.items())
    return json.dumps([config.scheme.to_data(), kinds])


def structures(args: argparse.Namespace) -> dict[str, Any]:
    options = TrainingOptions(epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            t, name, n = args.task, f"proxy{seed}", args.proxy_trials or args.trials
            _, p_wall, p_cost = study(
                name, t, args.proxy, "per_group.yaml", seed, args, Path(tmp), n
            )
            picks: dict[str, TrialConfig] = {}  # each structure's best config, best first
            for best in best_trials(name, f"sqlite:///{tmp}/{name}.db", n):
                picks.setdefault(_structure(best.config, args.key), best.config)
            found = list(picks.values())[: args.k]
            if args.also:  # a second proxy search, in a space of one structure
                also, a_wall, a_cost = study(
                    f"also{seed}", t, args.proxy, args.also, seed, args, Path(tmp), args.also_trials
                )
                found, p_wall, p_cost = [*found, also], p_wall + a_wall, p_cost + a_cost
            proxy = resolve_task(t, {**args.options, "width": args.proxy}).make_model()
            target_task = resolve_task(t, {**args.options, "width": args.target}, seed=seed)
            judge = resolve_task(
                t, {**args.options, "width": args.decide_at or args.target}, seed=seed
            )
            started = time.perf_counter()
            scores = [
                trained(judge, transfer(c, proxy, judge.make_model(), args.rule), seed, options)
                for c in found
            ]
            wall = p_wall + time.perf_counter() - started
            chosen = transfer(
                found[scores.index(min(scores))], proxy, target_task.make_model(), args.rule
            )
            params = sum(p.numel() for p in judge.make_model().parameters())
            cost = p_cost + len(found) * params * args.epochs * args.steps
            fresh = [trained(target_task, chosen, s, options) for s in FRESH_SEEDS[: args.fresh]]
            rows.append(
                {
                    "seed": seed,
                    "method": f"structured (k={args.k}, key {args.key})",
                    "fresh": fresh,
                    "wall_s": wall,
                    "cost": cost,
                    "config": chosen.to_dict(),
                    "candidates": [c.to_dict() for c in found],
                    "scores": scores,
                }
            )
            print(f"  seed {seed} scores {scores} fresh {statistics.fmean(fresh):.4f}", flush=True)
    return {
        "task": args.task,
        "proxy": args.proxy,
        "target": args.target,
        "decide_at": args.decide_at or args.target,
        "also": [args.also, args.also_trials] if args.also else None,
        "proxy_trials": args.proxy_trials or args.trials,
        "rows": rows,
    }


def show_sweep(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for label in SWEEP_RULES if any(r["rule"] == label for r in result["rows"])]
    fig, axes = plt.subplots(
        1, len(labels), figsize=(5 * len(labels), 4), sharey=True, squeeze=False
    )
    axes = axes[0]
    for ax, label in zip(axes, labels, strict=True):
        for w in result["widths"]:
            pts = [
                (r["lr"], r["val_loss"])
                for r in result["rows"]
                if r["rule"] == label and r["width"] == w
            ]
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"width {w}")
            best = min(pts, key=lambda p: p[1])
            print(f"{label:<36} width {w:<5} best lr {best[0]:<8g} val_loss {best[1]:.4f}")
        ax.set(xscale="log", xlabel="base lr (at the narrowest width)", title=label)
    axes[0].set_ylabel("val_loss")
    finite = [r["val_loss"] for r in result["rows"] if math.isfinite(r["val_loss"])]
    axes[0].set_ylim(min(finite) * 0.97, min(max(finite), min(finite) * 1.6))
    axes[-1].legend()
    fig.suptitle(f"{result['task']}: validation loss against the base lr, per width")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def show_headline(result: dict[str, Any], against: list[dict[str, Any]]) -> None:
    """The table, each method against the direct search: this run's, else ``against``'s rows
    (an earlier headline's, for the same seeds)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in result["rows"]:
        by.setdefault(r["method"], []).append(r)
    seeds = {r["seed"] for r in result["rows"]}
    by.setdefault("direct", [r for r in against if r["method"] == "direct" and r["seed"] in seeds])
    direct = {r["seed"]: statistics.fmean(r["fresh"]) for r in by["direct"]}
    print(
        f"{result['task']} {result['proxy']} -> {result['target']}, {result['trials']} trials"
        f" ({result.get('proxy_trials', result['trials'])} at the proxy)"
    )
    print(
        f"{'method':<12} {'fresh mean':>10} {'vs direct':>10} {'wall vs direct':>15} {'param-steps vs direct':>22}"
    )
    for method, rows in by.items():
        means = [statistics.fmean(r["fresh"]) for r in rows]
        gaps = [m / direct[r["seed"]] - 1 for m, r in zip(means, rows, strict=True)]
        wall = statistics.fmean(r["wall_s"] for r in rows) / statistics.fmean(
            r["wall_s"] for r in by["direct"]
        )
        cost = statistics.fmean(r["cost"] for r in rows) / statistics.fmean(
            r["cost"] for r in by["direct"]
        )
        print(
            f"{method:<12} {statistics.fmean(means):10.4f} {statistics.fmean(gaps):+9.1%} {wall:15.2f} {cost:22.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=["sweep", "headline", "structures"])
    parser.add_argument("--k", type=int, default=2, help="structures tried at the target")
    parser.add_argument("--decide-at", type=int, help="structures: try them at this width")
    parser.add_argument("--also", help="structures: a second proxy search in this space's file")
    parser.add_argument("--also-trials", type=int, default=10, help="that search's trials")
    parser.add_argument("--key", choices=["kinds", "muon"], default="kinds", help="a structure")
    parser.add_argument("--task", default="tabular_mlp")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument(
        "--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    )
    parser.add_argument("--proxy", type=int, default=64)
    parser.add_argument("--target", type=int, default=512)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--proxy-trials", type=int, help="the proxy search's (default --trials)")
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="headline's rows"
    )
    parser.add_argument(
        "--against", type=Path, nargs="*", default=[], help="earlier headlines' JSON: direct rows"
    )
    parser.add_argument("--fresh", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tag", default="")
    parser.add_argument("--rule", default="sp-per-layer", help="the headline's transfer rule")
    parser.add_argument("--rules", nargs="*", default=[], help="sweep these rules only")
    parser.add_argument("--option", nargs="*", default=[], help="task options, KEY=VALUE")
    args = parser.parse_args()
    args.options = key_values(args.option, "--option")
    torch.set_num_threads(1)
    print(
        f"bench/transfer.py {args.part}: {platform.machine()}, {torch.get_num_threads()} thread; {args.task}"
    )
    name = f"transfer_{args.part}_{args.task}{args.tag}"
    if args.part == "sweep":
        result = sweep(args)
        show_sweep(result, OUT / f"{name}.png")
    elif args.part == "structures":
        local_ray.start()
        result = structures(args)
    else:
        local_ray.start()
        result = headline(args)
    result["command"] = " ".join(sys.argv)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=1))
    if args.part == "headline":
        against = [row for f in args.against for row in json.loads(f.read_text())["rows"]]
        show_headline(result, against)


if __name__ == "__main__":
    main()
