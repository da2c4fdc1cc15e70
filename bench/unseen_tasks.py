"""Two models written the way a user writes a ``module:function`` task, for checking a
search-quality default on models it was not chosen on (``bench/search_quality.py --tasks
unseen_tasks:gru_lm unseen_tasks:diabetes_mlp``). Written once, before measuring, and not
changed after: a model edited until the default wins would no longer be unseen.

- ``gru_lm``: a character LM with a GRU and a LayerNorm before its head, on other modules'
  source than the built-in LMs read.
- ``diabetes_mlp``: a regression MLP with BatchNorm on scikit-learn's bundled diabetes data
  (442 patients, 10 features), mean squared error on the standardized target.

Two more, written the same way on 2026-12-04, before anything was measured on them:

- ``digits_vit``: a small vision transformer on the 8x8 digits (2x2 patches by a strided
  Conv2d, a class token and positional embedding registered on the model, the layers in an
  ``nn.TransformerEncoder``), cross-entropy.
- ``digits_autoencoder``: an MLP autoencoder on the digits (64 -> 32 -> 8 -> 32 -> 64),
  mean squared error on its own input.
"""

from __future__ import annotations

import importlib
import inspect
import string

import torch
from torch import Tensor, nn

from groupwise.tasks import Task, TensorSplits, TokenWindows

VOCAB = string.printable
MODULES = ("calendar", "logging", "email.message", "http.client", "fractions")


def _text(max_chars: int, context: int) -> TokenWindows:
    index = {c: i for i, c in enumerate(VOCAB)}
    text = "\n".join(inspect.getsource(importlib.import_module(m)) for m in MODULES)[:max_chars]
    tokens = torch.tensor([index.get(c, index["?"]) for c in text], dtype=torch.long)
    cut = int(len(tokens) * 0.9)
    return TokenWindows(tokens[:cut], tokens[cut:], context)


class GRULM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.gru(self.embed(x))
        out: Tensor = self.out(self.norm(h))
        return out


def _lm_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.cross_entropy(outputs.flatten(0, 1), targets.flatten())


def gru_lm(*, seed: int = 0, embed: int = 48, hidden: int = 128, context: int = 64) -> Task:
    return Task(
        name="gru_lm",
        build_model=lambda: GRULM(len(VOCAB), embed, hidden),
        data=_text(200_000, context),
        loss=_lm_loss,
        description="Embedding -> GRU -> LayerNorm -> Linear char LM",
    )


def _diabetes(seed: int) -> TensorSplits:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, val = order[:331], order[331:]
    x = (x - x[train].mean(0)) / x[train].std(0)
    y = (y - y[train].mean()) / y[train].std()
    return TensorSplits(x[train], y[train, None], x[val], y[val, None])


def diabetes_mlp(*, seed: int = 0, width: int = 128) -> Task:
    return Task(
        name="diabetes_mlp",
        build_model=lambda: nn.Sequential(
            nn.Linear(10, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 1),
        ),
        data=_diabetes(seed),
        loss=nn.functional.mse_loss,
        description="regression MLP with BatchNorm on scikit-learn's diabetes data",
    )


def _digits(seed: int, autoencode: bool) -> TensorSplits:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, val = order[:1400], order[1400:]
    target = x if autoencode else y
    return TensorSplits(x[train], target[train], x[val], target[val])


class ViT(nn.Module):
    def __init__(self, d: int, layers: int) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, d, kernel_size=2, stride=2)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 17, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x: Tensor) -> Tensor:
        patches = self.patch(x.view(-1, 1, 8, 8)).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(len(x), -1, -1), patches], dim=1) + self.pos
        out: Tensor = self.head(self.norm(self.encoder(h)[:, 0]))
        return out


def digits_vit(*, seed: int = 0, d: int = 32, layers: int = 2) -> Task:
    return Task(
        name="digits_vit",
        build_model=lambda: ViT(d, layers),
        data=_digits(seed, autoencode=False),
        loss=nn.functional.cross_entropy,
        description="2x2-patch vision transformer on the 8x8 digits",
    )


def digits_autoencoder(*, seed: int = 0) -> Task:
    return Task(
        name="digits_autoencoder",
        build_model=lambda: nn.Sequential(
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, 8),
            nn.ReLU(),
            nn.Linear(8, 32),
            nn.ReLU(),
            nn.Linear(32, 64),
        ),
        data=_digits(seed, autoencode=True),
        loss=nn.functional.mse_loss,
        description="MLP autoencoder on the digits, mean squared error on its input",
    )
