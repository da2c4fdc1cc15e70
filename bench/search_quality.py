"""Does per-group search pay? Three searches at equal budgets, several seeds, two tasks.

    python bench/search_quality.py [--tasks char_lstm tiny_transformer] [--seeds 0 1 2]
                                   [--trials 24] [--epochs 4] [--steps 50] [--out DIR]

For each task and seed, at the same budget (trials x epochs, no pruning):

- (a) baseline: one optimizer for the whole model, tuned over its kind (AdamW or SGD) and a
  global lr and weight decay (search_spaces/single_optimizer.yaml), pinned TPE;
- (b) groupwise: per-group search (char_lstm: seeds_mixed.yaml, per-group AdamW/SGD and lr
  over module_type and depth; tiny_transformer: muon_split.yaml, Muon or AdamW per role),
  pinned TPE;
- (c) random search over (b)'s space;
- (b') as (b) with the shipped median pruner, for the epochs pruning saves.

Printed: best validation loss (mean +- sample std over seeds, and min..max), how many trials
each search needed to reach (a)'s final best on the same seed, epochs trained, and a plot of
best-so-far per trial (OUT/search_quality.png). Raw per-study results go to
OUT/search_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import local_ray  # noqa: E402
from groupwise.execution import launch  # noqa: E402
from groupwise.spec import read_study  # noqa: E402
from groupwise.store import DUPLICATE_ATTR  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")

PER_GROUP = {"char_lstm": "seeds_mixed.yaml", "tiny_transformer": "muon_split.yaml"}
MEDIAN = "{name: median, options: {n_startup_trials: 5, n_warmup_steps: 2}}"
METHODS: dict[str, tuple[str | None, str, str]] = {
    # name: (space (None: the task's per-group space), sampler, pruner)
    "a: one optimizer, TPE": ("single_optimizer.yaml", "{name: tpe}", "none"),
    "b: per-group, TPE": (None, "{name: tpe}", "none"),
    "c: per-group, random": (None, "{name: random}", "none"),
    "b': per-group, TPE + median pruning": (None, "{name: tpe}", MEDIAN),
}


def run_one(task: str, method: str, seed: int, args: argparse.Namespace, tmp: Path) -> dict:
    space, sampler, pruner = METHODS[method]
    space_file = ROOT / "search_spaces" / (space or PER_GROUP[task])
    name = f"{task}-{method.split(':')[0]}-{seed}".replace("'", "p")
    path = local_ray.study_file(  # objective: val_loss, minimize (the default)
        tmp,
        name,
        task=task,
        trials=args.trials,
        training=f"{{epochs: {args.epochs}, steps_per_epoch: {args.steps}, batch_size: 64}}",
        space=space_file,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
    )
    storage = f"sqlite:///{tmp}/{name}.db"
    started = time.perf_counter()
    launch(read_study(path), storage=storage)
    wall = time.perf_counter() - started
    trials = sorted(
        optuna.load_study(study_name=name, storage=storage).get_trials(), key=lambda t: t.number
    )
    best, curve = float("inf"), []
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
            best = min(best, t.value)
        curve.append(best)
    epochs = sum(len(t.intermediate_values) for t in trials if DUPLICATE_ATTR not in t.user_attrs)
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "best": best,
        "curve": curve,
        "epochs": epochs,
        "wall_s": wall,
    }


def trials_to_reach(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v <= target), None)


def summarize(results: list[dict], tasks: list[str], trials: int) -> None:
    for task in tasks:
        print(f"\n{task}")
        print(
            f"  {'search':<38} {'best val_loss (mean +- std)':>28} {'min..max':>17} "
            f"{'trials to reach (a)':>20} {'epochs':>8}"
        )
        mine = [r for r in results if r["task"] == task]
        base = {r["seed"]: r["best"] for r in mine if r["method"].startswith("a:")}
        for method in METHODS:
            rows = [r for r in mine if r["method"] == method]
            if not rows:
                continue
            bests = [r["best"] for r in rows]
            spread = statistics.stdev(bests) if len(bests) > 1 else 0.0
            reach = [
                trials_to_reach(r["curve"], base[r["seed"]]) for r in rows if r["seed"] in base
            ]
            got = sorted(n for n in reach if n is not None)
            reached = (
                f"{statistics.median(got):.0f} ({len(got)}/{len(reach)} seeds)"
                if got
                else f"> {trials} (0/{len(reach)})"
            )
            epochs = statistics.mean(r["epochs"] for r in rows)
            print(
                f"  {method:<38} {statistics.mean(bests):>20.4f} +- {spread:.4f} "
                f"{min(bests):>8.4f}..{max(bests):.4f} {reached:>20} {epochs:>8.0f}"
            )


def plot(results: list[dict], tasks: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for method in METHODS:
            rows = [r for r in results if r["task"] == task and r["method"] == method]
            if not rows:
                continue
            n = min(len(r["curve"]) for r in rows)
            mean = [statistics.mean(r["curve"][i] for r in rows) for i in range(n)]
            ax.plot(range(1, n + 1), mean, label=method)
        ax.set_title(f"{task}: best val_loss so far (mean over seeds)")
        ax.set_xlabel("trial")
        ax.set_ylabel("val_loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "search_quality.png", dpi=110)
    print(f"\nplot: {out / 'search_quality.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["char_lstm", "tiny_transformer"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"bench/search_quality.py: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}; {args.trials} trials x {args.epochs} epochs x "
        f"{args.steps} steps per study"
    )
    local_ray.start()
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            for seed in args.seeds:
                for method in args.methods:
                    r = run_one(task, method, seed, args, Path(tmp))
                    results.append(r)
                    print(
                        f"  {task} seed {seed} {method}: best {r['best']:.4f}, "
                        f"{r['epochs']} epochs, {r['wall_s']:.0f} s",
                        flush=True,
                    )
    (args.out / "search_quality.json").write_text(json.dumps(results, indent=1))
    summarize(results, args.tasks, args.trials)
    plot(results, args.tasks, args.out)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
