"""scikit-learn's bundled breast-cancer data (569 tumours, 30 features; no download), or
20,000 samples scikit-learn generates (``dataset: synthetic``).

Built-in ``tabular_mlp``: a residual MLP with LayerNorm and an input embedding, the shape of
a modern tabular network (an input projection, blocks of norm -> matrix -> matrix, a head),
so its parts (embedding, hidden matrices, norms, head) can want different treatment. The
features are standardized on the training split; the split is fixed by the seed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from groupwise.errors import TaskError
from groupwise.tasks._base import Task, parametrization_of, register_task
from groupwise.tasks._data import TensorSplits
from groupwise.tasks._digits import accuracy
from groupwise.tasks._text import MupReadout


def cancer_splits(seed: int, val_fraction: float = 0.25) -> TensorSplits:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return _standardized(bunch.data, bunch.target, seed, val_fraction)


def synthetic_splits(seed: int, val_fraction: float = 0.25) -> TensorSplits:
    """scikit-learn's ``make_classification``: 20,000 samples of 30 features (12 informative,
    6 redundant), 4 classes with some label noise; fixed by the seed, generated, no download.
    Enough validation samples (5,000) that an lr's effect is not lost in which samples the
    loss is measured on, as it is on the 143 of the breast-cancer split."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=20_000,
        n_features=FEATURES,
        n_informative=12,
        n_redundant=6,
        n_classes=4,
        n_clusters_per_class=2,
        flip_y=0.05,
        random_state=seed,
    )
    return _standardized(x, y, seed, val_fraction)


def _standardized(data: object, target: object, seed: int, val_fraction: float) -> TensorSplits:
    x = torch.tensor(data, dtype=torch.float32)
    y = torch.tensor(target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(len(x) * (1 - val_fraction))
    train, val = order[:cut], order[cut:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    x = (x - mean) / std
    return TensorSplits(x[train], y[train], x[val], y[val])


FEATURES = 30  # the breast-cancer data's, and the synthetic set's
DATASETS = {"cancer": cancer_splits, "synthetic": synthetic_splits}


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 2 * width)
        self.down = nn.Linear(2 * width, width)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.down(nn.functional.gelu(self.up(self.norm(x))))
        return out


class TabularMLP(nn.Module):
    """``base_width`` set: μP (the mup package's form): the head's output times
    ``base_width / width`` and its weight initialised to zero (Tensor Programs V, D.2)."""

    def __init__(
        self, features: int, width: int, blocks: int, classes: int, base_width: int = 0
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(features, width)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.head = (
            MupReadout(width, classes, base_width / width)
            if base_width
            else nn.Linear(width, classes)
        )
        if base_width:
            nn.init.zeros_(self.head.weight)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        out: Tensor = self.head(self.norm(h))
        return out


@register_task("tabular_mlp")
def tabular_mlp(
    *,
    seed: int = 0,
    width: int = 64,
    blocks: int = 2,
    parametrization: str = "standard",
    base_width: int = 64,
    dataset: str = "cancer",
) -> Task:
    """``parametrization: mup`` builds the MLP in μP relative to ``base_width``;
    ``dataset: synthetic`` trains it on 20,000 generated samples (4 classes) instead of the
    569 tumours."""
    mup = parametrization_of(parametrization, width, base_width)
    if dataset not in DATASETS:
        raise TaskError(f"task option dataset: {dataset!r} is not one of {', '.join(DATASETS)}")
    classes = 2 if dataset == "cancer" else 4
    return Task(
        name="tabular_mlp",
        build_model=lambda: TabularMLP(FEATURES, width, blocks, classes, base_width if mup else 0),
        data=DATASETS[dataset](seed),
        loss=nn.functional.cross_entropy,
        metrics={"accuracy": accuracy},
        description="residual MLP with LayerNorm on scikit-learn's breast-cancer data",
    )
