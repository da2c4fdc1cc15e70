"""Which pruner should the built-in studies use? Measured, not assumed.

    python bench/pruning.py [--tasks digits_cnn char_rnn] [--seeds 3] [--trials 30]

For each task and seed, the same study (TPE, the task's seeds_mixed space, equal trial
budget) runs under each pruner. Reported per pruner: the best final validation loss (mean
and spread over seeds), the epochs actually trained (what pruning saves), and, from the
unpruned runs, how well a trial's loss after epoch k ranks it at the end (Spearman rank
correlation): when early scores barely predict final ones, early pruning throws winners away.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import ray
from optuna.trial import TrialState

import local_ray
from groupwise.execution import launch
from groupwise.studyfiles import read_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parent.parent

PRUNERS = {
    "none": "none",
    "median, warm-up 0": "{name: median, options: {n_startup_trials: 5, n_warmup_steps: 0}}",
    "median, warm-up 2 (ours)": "{name: median, options: {n_startup_trials: 5, n_warmup_steps: 2}}",
    "successive halving, min 1": "{name: successive_halving, options: {min_resource: 1}}",
    "hyperband, min 1": "{name: hyperband, options: {min_resource: 1}}",
    "hyperband, min 2 (ours)": "{name: hyperband, options: {min_resource: 2}}",
}
TASKS = {  # task: (epochs, steps per epoch or None)
    "digits_cnn": (8, None),
    "char_rnn": (6, 25),
}


def study(directory: Path, name: str, task: str, pruner: str, seed: int, trials: int) -> Path:
    epochs, steps = TASKS[task]
    steps_text = f", steps_per_epoch: {steps}" if steps else ""
    path = directory / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ntask: {task}\nsearch_space: {ROOT / 'search_spaces' / 'seeds_mixed.yaml'}\n"
        f"budget: {{trials: {trials}}}\ntraining: {{epochs: {epochs}{steps_text}, batch_size: 64}}\n"
        f"sampler: {{name: tpe, options: {{n_startup_trials: 8}}}}\npruner: {pruner}\n"
        f"workers: {{count: 2, cpus_per_trial: 1}}\nseed: {seed}\n"
    )
    return path


def spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        for rank, index in enumerate(order):
            out[index] = float(rank)
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    local_ray.start(num_cpus=2)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        db = f"sqlite:///{directory}/pruning.db"
        for task in args.tasks:
            epochs = TASKS[task][0]
            print(f"\n{task}: {args.trials} trials x {epochs} epochs, TPE, {args.seeds} seeds")
            print(f"{'pruner':<28} {'best val_loss':>20} {'epochs trained':>15} {'saved':>6}")
            curves: list[dict[int, float]] = []
            for index, (label, pruner) in enumerate(PRUNERS.items()):
                bests, spent = [], []
                for seed in range(args.seeds):
                    name = f"{task}-p{index}-s{seed}"
                    launch(
                        read_study(study(directory, name, task, pruner, seed, args.trials)),
                        storage=db,
                    )
                    trials = optuna.load_study(study_name=name, storage=db).get_trials()
                    done = [t for t in trials if t.state == TrialState.COMPLETE]
                    bests.append(min(t.value for t in done if t.value is not None))
                    spent.append(sum(len(t.intermediate_values) for t in trials))
                    if label == "none":
                        curves += [dict(t.intermediate_values) for t in done]
                full = args.trials * epochs
                mean, spread = statistics.fmean(bests), statistics.pstdev(bests)
                print(
                    f"{label:<28} {mean:>11.4f} ± {spread:<6.4f} {statistics.fmean(spent):>15.1f} "
                    f"{1 - statistics.fmean(spent) / full:>6.0%}"
                )
            finals = [c[epochs] for c in curves if epochs in c]
            cells = []
            for k in range(1, epochs):
                early = [c[k] for c in curves if epochs in c]
                cells.append(f"epoch {k}: {spearman(early, finals):.2f}")
            print(
                f"rank correlation with the final loss ({len(finals)} unpruned trials): {', '.join(cells)}"
            )
    print(f"\n{time.perf_counter() - started:.0f} s in all; {os.cpu_count()} CPUs")
    ray.shutdown()


if __name__ == "__main__":
    main()
