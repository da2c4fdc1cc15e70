"""The digits_mlp built-in task trained by a user's own loop: as a groupwise function task
(:func:`digits_mlp`) and, for Ray Tune and plain Optuna, as a plain loop at a given lr
(:func:`loop`). The same model, data and batches as the built-in task's."""

from __future__ import annotations

from collections.abc import Iterator

import torch

import groupwise
from groupwise.tasks import Task, resolve_task

_task: Task | None = None


def task() -> Task:
    global _task
    if _task is None:  # loaded once per process, as a groupwise worker keeps its task
        _task = resolve_task("digits_mlp", seed=0)
    return _task


def epochs_of(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: object,
    epochs: int,
    steps: int,
    seed: int,
) -> Iterator[tuple[int, float]]:
    """Train ``epochs`` x ``steps`` steps of 64 samples; yield (epoch, validation loss)."""
    data = task()
    for epoch in range(1, epochs + 1):
        model.train()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        for x, y in data.data.train_batches(generator, 64, steps):
            loss = data.loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()  # type: ignore[attr-defined]
        model.eval()
        total, seen = 0.0, 0
        with torch.no_grad():
            for x, y in data.data.eval_batches(256):
                total += data.loss(model(x), y).item() * len(x)
                seen += len(x)
        yield epoch, total / seen


def loop(lr: float, epochs: int, steps: int, seed: int) -> Iterator[tuple[int, float]]:
    """The loop with a plain AdamW at ``lr`` (what Ray Tune and Optuna users write)."""
    torch.manual_seed(seed)
    model = task().make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    yield from epochs_of(model, optimizer, None, epochs, steps, seed)


def digits_mlp(trial: groupwise.Trial) -> None:
    """The loop as a groupwise function task."""
    epochs, steps = int(trial.options["epochs"]), int(trial.options["steps"])
    model = task().make_model()
    optimizer, scheduler = trial.build(model, total_steps=epochs * steps)
    for epoch, val in epochs_of(model, optimizer, scheduler, epochs, steps, trial.seed):
        trial.report(epoch, val_loss=val)
