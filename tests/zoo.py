"""Models the tests share: the seeds' models as their articles wrote them, and a few more."""

from __future__ import annotations

import copy

import torch
from torch import nn


class MyModel(nn.Module):
    """Seed 000's model, verbatim: Embedding -> RNN -> Linear."""

    def __init__(self, vocab_size: int = 50, hidden_size: int = 16) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.rnn = nn.RNN(hidden_size, hidden_size)
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, x):
        x = self.embedding(x)
        x, _ = self.rnn(x)
        return self.fc(x)


def seed_sequential() -> nn.Module:
    """Seed 002, example 1: Linear -> Linear."""
    return nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 1))


def seed_conv() -> nn.Module:
    """Seed 002, example 2, at a size that runs in tests: Conv2d -> Linear."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """Embeddings, attention, MLP, norms and a head tied to the token embedding."""

    def __init__(self, vocab: int = 40, d: int = 16, layers: int = 2, ctx: int = 8) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(ctx, d))  # registered on the root module
        self.blocks = nn.ModuleList(Block(d) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, x):
        h = self.tok(x) + self.pos[: x.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))


def deep_mlp(depth: int = 24, width: int = 32) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers)


def matrices_only(width: int = 12) -> nn.Sequential:
    """Only 2-D parameters: what torch's Muon accepts."""
    return nn.Sequential(
        nn.Linear(6, width, bias=False), nn.Tanh(), nn.Linear(width, 3, bias=False)
    )


def mixed_model() -> nn.Module:
    """A little of everything, for optimizers that take any tensor."""

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(20, 6)
            self.lin = nn.Linear(6, 12)
            self.norm = nn.LayerNorm(12)
            self.out = nn.Linear(12, 3)

        def forward(self, x):
            return self.out(self.norm(torch.tanh(self.lin(self.emb(x).mean(1)))))

    return Mixed()


def twin(model: torch.nn.Module) -> torch.nn.Module:
    """An identical, independent copy (same initial weights, ties kept)."""
    return copy.deepcopy(model)


def params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
