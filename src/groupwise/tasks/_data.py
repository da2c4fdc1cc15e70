"""Two shapes of data every built-in task uses: tensor pairs, and windows over a token stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TensorSplits:
    """Classification data: an epoch shuffles the training pairs."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor

    def train_batches(
        self, generator: torch.Generator, batch_size: int, steps: int | None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(self.train_x), generator=generator)
        starts = range(0, len(order), batch_size)
        for i, start in enumerate(starts):
            if steps is not None and i >= steps:
                return
            idx = order[start : start + batch_size]
            yield self.train_x[idx], self.train_y[idx]

    def batches_per_epoch(self, batch_size: int) -> int:
        """How many batches one pass over the training pairs makes (the last may be short)."""
        return -(-len(self.train_x) // batch_size)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.val_x), batch_size):
            yield self.val_x[start : start + batch_size], self.val_y[start : start + batch_size]


@dataclass(frozen=True)
class TokenWindows:
    """Language-model data: random windows of the training stream, fixed windows for validation."""

    train: Tensor  # 1-D token ids
    val: Tensor
    context: int

    def train_batches(
        self, generator: torch.Generator, batch_size: int, steps: int | None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        n = steps if steps is not None else max(1, len(self.train) // (batch_size * self.context))
        for _ in range(n):
            starts = torch.randint(
                0, len(self.train) - self.context - 1, (batch_size,), generator=generator
            )
            yield self._windows(self.train, starts)

    def batches_per_epoch(self, batch_size: int) -> int:
        """As many windows as the training stream holds, in batches."""
        return max(1, len(self.train) // (batch_size * self.context))

    def eval_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        starts = torch.arange(0, len(self.val) - self.context - 1, self.context)
        for i in range(0, len(starts), batch_size):
            yield self._windows(self.val, starts[i : i + batch_size])

    def _windows(self, stream: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        offsets = torch.arange(self.context)
        x = stream[starts[:, None] + offsets]
        y = stream[starts[:, None] + offsets + 1]
        return x, y
