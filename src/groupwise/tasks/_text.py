"""Character language models on text every Python install has: the standard library's source.

Built-ins: ``char_rnn`` (Embedding -> RNN -> Linear, seed 000's model), ``char_lstm``
(Embedding -> LSTM -> Linear), and ``tiny_transformer`` (token and position embeddings,
attention, MLP, norms, and a head tied to the token embedding: where Muon-for-matrices matters).
"""

from __future__ import annotations

import importlib
import inspect
import string
from collections.abc import Callable

import torch
from torch import Tensor, nn

from groupwise.tasks._base import Task, parametrization_of, register_task
from groupwise.tasks._data import TokenWindows

# A fixed reading list, so the corpus is the same on every machine with the same Python.
CORPUS_MODULES = (
    "argparse",
    "difflib",
    "textwrap",
    "json.decoder",
    "json.encoder",
    "shlex",
    "string",
)
VOCAB = string.printable  # 100 characters; anything else reads as "?"
_INDEX = {c: i for i, c in enumerate(VOCAB)}
_UNKNOWN = _INDEX["?"]


def corpus(max_chars: int) -> str:
    """The standard library's own source, module by module, cut to ``max_chars``."""
    parts = [inspect.getsource(importlib.import_module(name)) for name in CORPUS_MODULES]
    return "\n".join(parts)[:max_chars]


def encode(text: str) -> Tensor:
    return torch.tensor([_INDEX.get(c, _UNKNOWN) for c in text], dtype=torch.long)


def text_splits(max_chars: int, context: int, val_fraction: float = 0.1) -> TokenWindows:
    """The last ``val_fraction`` of the corpus is validation: contiguous, so no window leaks."""
    tokens = encode(corpus(max_chars))
    cut = int(len(tokens) * (1 - val_fraction))
    return TokenWindows(tokens[:cut], tokens[cut:], context)


def lm_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.cross_entropy(outputs.flatten(0, 1), targets.flatten())


def lm_accuracy(outputs: Tensor, targets: Tensor) -> float:
    return (outputs.argmax(-1) == targets).float().mean().item()


class CharRNN(nn.Module):
    """Embedding -> RNN or LSTM -> Linear."""

    def __init__(self, cell: str, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        rnn_cls = {"rnn": nn.RNN, "lstm": nn.LSTM}[cell]
        self.rnn = rnn_cls(embed, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.rnn(self.embedding(x))
        out: Tensor = self.fc(h)
        return out


def _char_task(cell: str) -> Callable[..., Task]:
    """The factory of the character LM whose recurrent layer is ``cell`` ("rnn" or "lstm")."""

    def factory(
        *,
        seed: int = 0,
        embed: int = 32,
        hidden: int = 128,
        context: int = 64,
        max_chars: int = 200_000,
    ) -> Task:
        return Task(
            name=f"char_{cell}",
            build_model=lambda: CharRNN(cell, len(VOCAB), embed, hidden),
            data=text_splits(max_chars, context),
            loss=lm_loss,
            metrics={"accuracy": lm_accuracy},
            description=f"Embedding -> {cell.upper()} -> Linear char LM on the stdlib's source",
        )

    return factory


char_rnn = register_task("char_rnn")(_char_task("rnn"))
char_lstm = register_task("char_lstm")(_char_task("lstm"))


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        out: Tensor = x + self.mlp(self.ln2(x))
        return out


class MupAttention(nn.Module):
    """Causal self-attention whose scores are scaled by 1/d_head (μP), not 1/sqrt(d_head):
    ``sqrt(base_head) / d_head``, so at the base width it is the standard scale."""

    def __init__(self, d: int, heads: int, base_head: int) -> None:
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(d, 3 * d), nn.Linear(d, d)
        head = d // heads
        self.scale = base_head**0.5 / head

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = (
            part.view(b, t, self.heads, d // self.heads).transpose(1, 2)
            for part in self.qkv(x).chunk(3, dim=-1)
        )
        att = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=~mask, scale=self.scale)
        out: Tensor = self.proj(att.transpose(1, 2).reshape(b, t, d))
        return out


class MupBlock(nn.Module):
    """:class:`Block` with :class:`MupAttention`."""

    def __init__(self, d: int, heads: int, base_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = MupAttention(d, heads, base_head)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x), mask)
        out: Tensor = x + self.mlp(self.ln2(x))
        return out


class MupReadout(nn.Linear):
    """μP's output layer: a Linear whose output is multiplied by ``base_width / width``
    (the mup package's MuReadout), so the multiplier is part of the layer it scales."""

    def __init__(self, d: int, out: int, mult: float, bias: bool = True) -> None:
        super().__init__(d, out, bias=bias)
        self.mult = mult

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = super().forward(x) * self.mult
        return out


class TinyTransformer(nn.Module):
    """A causal character transformer whose output head shares the token embedding.

    ``base_width`` set: μP (Tensor Programs V, the mup package's form): attention scores
    over d_head (:class:`MupAttention`) and logits times ``base_width / d``; the tied token
    embedding keeps its N(0, 1) init, as μP's input layer does. At ``d == base_width`` the
    μP model computes what the standard one does, up to the attention module."""

    def __init__(
        self, vocab: int, d: int, layers: int, heads: int, context: int, base_width: int = 0
    ) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(
            MupBlock(d, heads, base_width // heads) if base_width else Block(d, heads)
            for _ in range(layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.head = (
            MupReadout(d, vocab, base_width / d, bias=False)
            if base_width
            else nn.Linear(d, vocab, bias=False)
        )
        self.head.weight = self.tok.weight  # tied: the partition lists it once, as tok.weight
        self.register_buffer("mask", torch.triu(torch.ones(context, context, dtype=torch.bool), 1))

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(t, device=x.device))
        mask: Tensor = self.mask[:t, :t]  # type: ignore[index]
        for block in self.blocks:
            h = block(h, mask)
        out: Tensor = self.head(self.ln_f(h))
        return out


@register_task("tiny_transformer")
def tiny_transformer(
    *,
    seed: int = 0,
    width: int = 64,
    layers: int = 2,
    heads: int = 4,
    context: int = 64,
    max_chars: int = 200_000,
    parametrization: str = "standard",
    base_width: int = 64,
    d: int | None = None,
) -> Task:
    """``width`` is the model dimension (``d``, its older name, still works);
    ``parametrization: mup`` builds it in μP relative to ``base_width``."""
    width = width if d is None else d
    mup = parametrization_of(parametrization, width, base_width, heads)
    return Task(
        name="tiny_transformer",
        build_model=lambda: TinyTransformer(
            len(VOCAB), width, layers, heads, context, base_width if mup else 0
        ),
        data=text_splits(max_chars, context),
        loss=lm_loss,
        metrics={"accuracy": lm_accuracy},
        description="causal character transformer with a tied head, on the stdlib's source",
    )
