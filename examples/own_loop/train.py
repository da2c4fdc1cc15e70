"""Searching with your own training loop: a function task.

groupwise calls ``train(trial)`` in a worker once per trial. The function builds its model and
data and trains as it always does; it takes the optimizer and lr scheduler from
``trial.build`` and reports each epoch's metrics with ``trial.report``, which raises
``groupwise.TrialPruned`` when the study stops the trial early.

    groupwise launch examples/own_loop/study.yaml   # from the repository root

Real data, offline: scikit-learn's bundled handwritten digits (8x8).
"""

from __future__ import annotations

import torch
from torch import nn

import groupwise


def data(seed: int) -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, val = order[:1400], order[1400:]
    return x[train], y[train], x[val], y[val]


def model(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.LayerNorm(4 * width),
        nn.Linear(4 * width, 10),
    )


def train(trial: groupwise.Trial) -> None:
    options = trial.options  # the study file's task options
    epochs, batch = options.get("epochs", 4), options.get("batch_size", 64)
    x_train, y_train, x_val, y_val = data(seed=options.get("data_seed", 0))
    net = model(options.get("width", 16)).to(trial.device)
    steps = len(x_train) // batch
    optimizer, scheduler = trial.build(net, total_steps=epochs * steps)
    clip = trial.config.grad_clip_norm
    order = torch.Generator().manual_seed(trial.seed)
    for epoch in range(1, epochs + 1):
        net.train()
        permutation = torch.randperm(len(x_train), generator=order)
        total = 0.0
        for step in range(steps):
            index = permutation[step * batch : (step + 1) * batch]
            x, y = x_train[index].to(trial.device), y_train[index].to(trial.device)
            loss = nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), clip)
            optimizer.step()
            scheduler.step()
            total += loss.item()
        net.eval()
        with torch.no_grad():
            out = net(x_val.to(trial.device))
            val_loss = nn.functional.cross_entropy(out, y_val.to(trial.device)).item()
            accuracy = (out.argmax(-1).cpu() == y_val).float().mean().item()
        trial.report(epoch, val_loss=val_loss, val_accuracy=accuracy, train_loss=total / steps)
