"""scikit-learn's bundled 8x8 digits (1,797 images, shipped with the package: no download).

Built-ins: ``digits_mlp`` (Sequential Linear -> Linear, seed 002's first model) and
``digits_cnn`` (Conv2d -> Linear, seed 002's second). The train/validation split is a
permutation fixed by the seed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from groupwise.tasks._base import Task, register_task
from groupwise.tasks._data import TensorSplits


def digits_splits(seed: int, val_fraction: float = 0.2, images: bool = False) -> TensorSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    if images:
        x = x.view(-1, 1, 8, 8)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(len(x) * (1 - val_fraction))
    train, val = order[:cut], order[cut:]
    return TensorSplits(x[train], y[train], x[val], y[val])


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    return (outputs.argmax(-1) == targets).float().mean().item()


@register_task("digits_mlp")
def digits_mlp(*, seed: int = 0, hidden: int = 64) -> Task:
    return Task(
        name="digits_mlp",
        build_model=lambda: nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)),
        data=digits_splits(seed),
        loss=nn.functional.cross_entropy,
        metrics={"accuracy": accuracy},
        description="Linear -> Linear classifier on scikit-learn's 8x8 digits",
    )


@register_task("digits_cnn")
def digits_cnn(*, seed: int = 0, channels: int = 16) -> Task:
    return Task(
        name="digits_cnn",
        build_model=lambda: nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * 64, 10),
        ),
        data=digits_splits(seed, images=True),
        loss=nn.functional.cross_entropy,
        metrics={"accuracy": accuracy},
        description="Conv2d -> Linear classifier on scikit-learn's 8x8 digits",
    )
