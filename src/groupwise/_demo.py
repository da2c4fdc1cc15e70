"""A short tour of the core API on a real text corpus; ``groupwise demo`` runs it.

It stands in for the main job until the search exists: it partitions a small character
language model every built-in way, builds a mixed optimizer (AdamW on the embedding, Muon on
hidden matrices, AdamW on the rest) and trains it for a few steps with one backward per step.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable

import torch
from torch import nn

from groupwise.optim import build_optimizer
from groupwise.partition import partition, summarize


class CharLM(nn.Module):
    """Embedding -> LSTM -> Linear, the shape of seed 000's model."""

    def __init__(self, vocab: int, hidden: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embedding(x))
        out: torch.Tensor = self.fc(self.norm(h))
        return out


def corpus_text() -> str:
    """Real English-and-Python text that ships with every Python: the json package's source."""
    return inspect.getsource(json)


def run(steps: int = 60, echo: Callable[[str], None] = print) -> list[float]:
    torch.manual_seed(0)
    text = corpus_text()
    vocab = sorted(set(text))
    data = torch.tensor([vocab.index(c) for c in text])
    model = CharLM(len(vocab))
    for scheme, options in [("module_type", {}), ("role", {}), ("depth", {"blocks": 2})]:
        echo(
            f"\n== partition(model, {scheme!r}{', ' if options else ''}"
            f"{', '.join(f'{k}={v}' for k, v in options.items())})"
        )
        echo(str(summarize(model, partition(model, scheme, **options))))
    config = {
        "scheme": "role",
        "groups": {
            "matrix": {"optimizer": "muon", "lr": 0.02},
            "embedding": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.0},
            "head": {"optimizer": "adamw", "lr": 3e-3},
            "vector": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.0},
        },
    }
    optimizer = build_optimizer(model, config)
    echo("\n== build_optimizer(model, config)")
    echo(str(optimizer.summary()))
    losses = []
    seq, batch = 64, 16
    for step in range(steps):
        starts = torch.randint(0, len(data) - seq - 1, (batch,))
        x = torch.stack([data[s : s + seq] for s in starts])
        y = torch.stack([data[s + 1 : s + seq + 1] for s in starts])
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # one backward, one step, whatever the number of optimizer kinds
        optimizer.step()
        losses.append(loss.item())
        if step % 20 == 0 or step == steps - 1:
            echo(f"step {step:3d}  loss {loss.item():.3f}")
    return losses
