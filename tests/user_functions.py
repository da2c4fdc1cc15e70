"""A user's own training functions (function tasks), referenced as ``user_functions:<name>``:
each builds its model and data and trains in its own loop, as a user's code does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

import groupwise

_calls = 0  # trials this process has trained


def _data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    return x[:192], y[:192], x[192:], y[192:]


def train(trial: groupwise.Trial) -> None:
    """A plain loop: epochs x 6 steps of 32 samples, a report per epoch. Options: ``epochs``;
    ``fault``: ``raise`` (at epoch 2), ``hang`` (forever, at epoch 2), ``kill`` (SIGKILL its
    worker once, with ``marker``), ``bad_every_other`` (every trial reports 1.0 but every
    second one 51.0: a median pruner prunes those at their first report; ``marker``: a file
    each stopped trial appends its last step to, from its ``except`` block)."""
    global _calls
    _calls += 1
    options = trial.options
    xt, yt, xv, yv = _data()
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2)).to(trial.device)
    epochs, steps = int(options.get("epochs", 3)), 6
    optimizer, scheduler = trial.build(model, total_steps=epochs * steps)
    order = torch.Generator().manual_seed(trial.seed)
    fault = options.get("fault")
    step = 0
    try:
        for epoch in range(1, epochs + 1):
            total = 0.0
            for _ in range(steps):
                index = torch.randint(0, len(xt), (32,), generator=order)
                loss = nn.functional.cross_entropy(model(xt[index]), yt[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item()
            _fault(fault, epoch, options.get("marker"))
            with torch.no_grad():
                val = nn.functional.cross_entropy(model(xv), yv)
            if fault == "bad_every_other":  # equal values are never pruned; 51 always is
                val = torch.tensor(51.0 if _calls % 2 == 0 else 1.0)
            step = epoch
            trial.report(epoch, val_loss=val, train_loss=total / steps)
    except groupwise.TrialPruned:
        if options.get("marker"):
            with open(options["marker"], "a") as f:
                f.write(f"{step}\n")
        raise


def _fault(fault: str | None, epoch: int, marker: str | None) -> None:
    if epoch != 2:
        return
    if fault == "raise":
        raise RuntimeError("boom: this training function fails on purpose")
    if fault == "hang":
        while True:
            time.sleep(1)
    if fault == "kill" and marker and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), 9)


def returns_value(trial: groupwise.Trial) -> float:
    """Reports nothing, returns its own value: the lr it was given (so a test can check it)."""
    model = nn.Linear(8, 2)
    optimizer, _ = trial.build(model, total_steps=1)
    return float(optimizer.param_groups[0]["lr"])


def never_builds(trial: groupwise.Trial) -> None:
    """Forgets to call trial.build."""


def raises_first(trial: groupwise.Trial) -> None:
    raise ValueError("no data here")


def two_arguments(trial: groupwise.Trial, extra: int) -> None:
    """Takes more than the trial."""


def steps_go_back(trial: groupwise.Trial) -> None:
    model = nn.Linear(8, 2)
    trial.build(model, total_steps=2)
    trial.report(2, val_loss=1.0)
    trial.report(1, val_loss=1.0)


def wrong_metric(trial: groupwise.Trial) -> None:
    model = nn.Linear(8, 2)
    trial.build(model, total_steps=2)
    trial.report(1, accuracy=0.5)


def raises_two_lines(trial: groupwise.Trial) -> None:
    raise ValueError("no data here\nlook in /data instead")
