"""A built-in task (digits_mlp, char_rnn ...) trained by a user's own loop: as a groupwise
function task (:func:`builtin`) and, for Ray Tune and plain Optuna, as a plain loop at a given lr
(:func:`loop`). The same model, data and batches as the built-in task's."""

from __future__ import annotations

from collections.abc import Iterator

import torch

import groupwise
from groupwise.tasks import Task, resolve_task

NAME = "digits_mlp"
_tasks: dict[str, Task] = {}


def task(name: str | None = None) -> Task:
    """The built-in task ``name`` (default :data:`NAME`), loaded once per process, as a
    groupwise worker keeps its task."""
    name = name or NAME
    if name not in _tasks:
        _tasks[name] = resolve_task(name, seed=0)
    return _tasks[name]


def epochs_of(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: object,
    epochs: int,
    steps: int,
    seed: int,
    name: str | None = None,
) -> Iterator[tuple[int, float]]:
    """Train ``epochs`` x ``steps`` steps of 64 samples; yield (epoch, validation loss)."""
    data = task(name)
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


def loop(
    lr: float, epochs: int, steps: int, seed: int, name: str | None = None
) -> Iterator[tuple[int, float]]:
    """The loop with a plain AdamW at ``lr`` (what Ray Tune and Optuna users write)."""
    torch.manual_seed(seed)
    model = task(name).make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    yield from epochs_of(model, optimizer, None, epochs, steps, seed, name)


def builtin(trial: groupwise.Trial) -> None:
    """The loop as a groupwise function task."""
    epochs, steps = int(trial.options["epochs"]), int(trial.options["steps"])
    name = trial.options.get("task")
    model = task(name).make_model()
    optimizer, scheduler = trial.build(model, total_steps=epochs * steps)
    for epoch, val in epochs_of(model, optimizer, scheduler, epochs, steps, trial.seed, name):
        trial.report(epoch, val_loss=val)
