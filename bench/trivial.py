"""A near-trivial task for overhead benchmarks: one sample, one step, a tiny model."""

from __future__ import annotations

import torch
from torch import nn

from groupwise.tasks import Task, TensorSplits


def trivial(*, seed: int = 0) -> Task:
    x, y = torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long)
    return Task(
        name="trivial",
        # the digits CNN's shape (Conv2d -> Linear), so seeds_mixed's partitions apply
        build_model=lambda: nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(64, 2)),
        data=TensorSplits(x, y, x, y),
        loss=nn.functional.cross_entropy,
    )
