"""Where is the best lr with and without a decay? One AdamW for the whole model, swept.

    python bench/schedule_lr.py [--task char_lstm] [--lrs 3e-3 1e-2 2e-2 3e-2 6e-2 1e-1]
        [--seeds 11 12] [--epochs 3] [--steps 50]

For each lr: the final val_loss (mean over the training seeds, on the data split of seed 0)
of a constant lr and of warmup + cosine (5%, to a tenth: the shipped spaces' schedule), at
the search-quality benchmark's budget per trial. Says whether the shipped lr ranges
(1e-4..3e-2 for AdamW and NAdamW) hold the best lr under each schedule.
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch

from groupwise.config import TrialConfig
from groupwise.tasks import resolve_task
from groupwise.training import DivergedError, Trainer, TrainingOptions

COSINE = {"warmup": 0.05, "decay": "cosine", "final_lr_fraction": 0.1}


def final_loss(data, lr: float, schedule: dict | None, seed: int, options) -> float:
    config: dict = {
        "scheme": "single",
        "groups": {"all": {"optimizer": "adamw", "lr": lr, "weight_decay": 1e-4}},
    }
    if schedule:
        config["schedule"] = schedule
    try:
        trainer = Trainer(data, TrialConfig.from_dict(config), seed=seed, options=options)
        for _ in range(options.epochs):
            report = trainer.run_epoch()
    except DivergedError:
        return math.inf
    return report.metrics["val_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="char_lstm")
    parser.add_argument(
        "--lrs", type=float, nargs="+", default=[3e-3, 1e-2, 2e-2, 3e-2, 6e-2, 1e-1]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = resolve_task(args.task, seed=0)
    options = TrainingOptions(epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64)
    print(f"{args.task}: {args.epochs} epochs x {args.steps} steps, seeds {args.seeds}")
    print(f"{'lr':>8} {'constant':>9} {'cosine':>9}")
    for lr in args.lrs:
        row = [
            statistics.mean(final_loss(data, lr, s, seed, options) for seed in args.seeds)
            for s in (None, COSINE)
        ]
        print(f"{lr:>8g} {row[0]:>9.4f} {row[1]:>9.4f}", flush=True)


if __name__ == "__main__":
    main()
