"""Trials per hour with K candidates trained in one batch, against one trial at a time.

    python bench/batched.py [--ks 1 4 8 16 32] [--trials 32] [--tasks digits_mlp ...]

For each task, the same ``--trials`` candidates (the role scheme, AdamW on every group but
Muon on the hidden matrices, each group's lr and weight decay drawn log-uniformly from a
fixed seed, the study's warmup + cosine schedule) are trained as a worker trains them:
``Trainer`` one at a time (K = 1), or ``BatchedTrainer`` K at a time, every epoch trained and
evaluated, each candidate's reports made. One thread, as a worker with ``cpus_per_trial: 1``
trains. Reported: trials per hour at each K and its ratio to K = 1, and the largest
difference between a candidate's last validation loss batched and alone (the same
candidates, so the numbers must agree to float rounding). Ray's dispatch and the database's
writes are left out of both: batching saves the first per batch, not the second.

A task whose model ``vmap`` cannot follow is reported with the reason and not batched.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time
from typing import Any

import torch

from groupwise.config import TrialConfig
from groupwise.partition import partition
from groupwise.tasks import resolve_task
from groupwise.training import BatchedTrainer, Trainer, TrainingOptions, batch_check

TASKS = {  # name: (task, options) -- "a small tiny_transformer": width 32
    "digits_mlp": ("digits_mlp", {}),
    "tabular_mlp": ("tabular_mlp", {}),
    "digits_cnn": ("digits_cnn", {}),
    "char_rnn": ("char_rnn", {}),
    "tiny_transformer_w32": ("tiny_transformer", {"width": 32}),
    "tiny_transformer": ("tiny_transformer", {}),
}
SCHEDULE = {"warmup": 0.05, "decay": "cosine", "final_lr_fraction": 0.1}


def candidates(task: Any, n: int, muon: bool) -> list[TrialConfig]:
    labels = list(partition(task.make_model(), "role"))
    rng = random.Random(0)
    configs = []
    for _ in range(n):
        groups: dict[str, dict[str, Any]] = {}
        for label in labels:
            kind = "muon" if muon and label == "matrix" else "adamw"
            lr = 10 ** rng.uniform(-3.5, -1.5 if kind == "adamw" else -1)
            groups[label] = {"optimizer": kind, "lr": lr, "weight_decay": 10 ** rng.uniform(-4, -1)}
        configs.append(
            TrialConfig.from_dict({"scheme": "role", "groups": groups, "schedule": SCHEDULE})
        )
    return configs


def alone(
    task: Any, configs: list[TrialConfig], options: TrainingOptions
) -> tuple[float, list[float]]:
    started = time.perf_counter()
    losses = []
    for config in configs:
        trainer = Trainer(task, config, seed=0, options=options)
        for _ in range(options.epochs):
            report = trainer.run_epoch()
        losses.append(report.metrics["val_loss"])
    return time.perf_counter() - started, losses


def batched(
    task: Any, configs: list[TrialConfig], k: int, options: TrainingOptions
) -> tuple[float, list[float]]:
    started = time.perf_counter()
    losses = []
    for first in range(0, len(configs), k):
        trainer = BatchedTrainer(task, configs[first : first + k], seed=0, options=options)
        for _ in range(options.epochs):
            reports = trainer.run_epoch()
        losses.extend(reports[i].metrics["val_loss"] for i in sorted(reports))
    return time.perf_counter() - started, losses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--families", nargs="+", default=["adamw", "muon"], choices=["adamw", "muon"]
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = TrainingOptions(
        epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size
    )
    print(f"bench/batched.py: {' '.join(sys.argv[1:])}")
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread")
    print(
        f"{args.trials} candidates, {args.epochs} epochs x {args.steps} steps of {args.batch_size}"
    )
    for label in args.tasks:
        name, task_options = TASKS[label]
        task = resolve_task(name, task_options, seed=0)
        params = sum(p.numel() for p in task.make_model().parameters())
        for family in args.families:
            configs = candidates(task, args.trials, muon=family == "muon")
            print(f"\n{label} ({params:,} parameters), {family}:")
            measure(task, configs, args.ks, options)


def measure(task: Any, configs: list[TrialConfig], ks: list[int], options: TrainingOptions) -> None:
    reason = batch_check(task, configs[0], options)
    base, base_losses = alone(task, configs, options)
    n = len(configs)
    print(f"  K=1   {3600 * n / base:8.0f} trials/h")
    if reason is not None:
        print(f"  not batched: {reason}")
        return
    for k in ks:
        if k == 1:
            continue
        wall, losses = batched(task, configs, k, options)
        diff = max(abs(a - b) for a, b in zip(base_losses, losses, strict=True) if math.isfinite(a))
        print(
            f"  K={k:<3} {3600 * n / wall:8.0f} trials/h  x{base / wall:5.2f}"
            f"  max |val_loss batched - alone| {diff:.2e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
