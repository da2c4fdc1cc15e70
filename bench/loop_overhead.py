"""The built-in training loop against the same loop written by hand in torch, side by side.

    python bench/loop_overhead.py [--rounds 15] [--steps 40] [--task tiny_transformer]

Both train the same model (same initial weights, same batches) for the same steps with bf16
autocast, gradients clipped to a norm, and warmup + cosine: groupwise's ``Trainer`` (its
MultiOptimizer, GradScaler, LambdaLR and micro-batch machinery) and a plain torch loop
(``torch.optim.AdamW``, ``torch.autocast``, ``clip_grad_norm_``, ``LambdaLR``). Each round
runs both, in alternating order, on one thread; reported: the median seconds per optimizer
step of each (training only; evaluation is left out of both) and their ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch

from groupwise.config import TrialConfig
from groupwise.schedules import Schedule
from groupwise.tasks import resolve_task
from groupwise.training import Trainer, TrainingOptions

SCHEDULE = Schedule(warmup=0.05, decay="cosine", final_lr_fraction=0.1)
LR, CLIP, BATCH = 3e-3, 1.0, 32


def groupwise_steps(task, steps: int) -> float:
    config = TrialConfig.from_dict(
        {
            "scheme": "single",
            "groups": {"all": {"optimizer": "adamw", "lr": LR}},
            "schedule": SCHEDULE.to_data(),
            "grad_clip_norm": CLIP,
        }
    )
    options = TrainingOptions(epochs=1, steps_per_epoch=steps, batch_size=BATCH, precision="bf16")
    trainer = Trainer(task, config, seed=0, options=options)
    trainer.model.train()
    batches = list(task.data.train_batches(torch.Generator().manual_seed(1), BATCH, steps))
    started = time.perf_counter()
    for batch in batches:
        trainer._train_step([batch])
    return (time.perf_counter() - started) / steps


def torch_steps(task, steps: int) -> float:
    torch.manual_seed(0)
    model = task.make_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: SCHEDULE.multiplier(min(step, steps - 1), steps)
    )
    batches = list(task.data.train_batches(torch.Generator().manual_seed(1), BATCH, steps))
    started = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            loss = task.loss(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        scheduler.step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--task", default="tiny_transformer")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = resolve_task(args.task)
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, {os.cpu_count()} CPUs "
        f"(1 thread); {args.task}, batch {BATCH}, {args.steps} steps x {args.rounds} rounds"
    )
    ours, theirs = [], []
    groupwise_steps(task, 5), torch_steps(task, 5)  # warm both paths up
    for round_ in range(args.rounds):
        pair = (groupwise_steps, torch_steps) if round_ % 2 == 0 else (torch_steps, groupwise_steps)
        for run in pair:
            (ours if run is groupwise_steps else theirs).append(run(task, args.steps))
    a, b = statistics.median(ours), statistics.median(theirs)
    spread = statistics.quantiles([o / t for o, t in zip(ours, theirs, strict=True)], n=10)
    print(f"{'loop':<52} {'ms/step':>8}")
    print(f"{'groupwise Trainer (bf16, clip, warmup + cosine)':<52} {a * 1e3:8.2f}")
    print(f"{'hand-written torch loop (the same)':<52} {b * 1e3:8.2f}")
    print(
        f"ratio {a / b:.3f} (per-round ratios, 10th-90th percentile {spread[0]:.3f}-{spread[-1]:.3f})"
    )
    assert math.isfinite(a / b)


if __name__ == "__main__":
    main()
