"""The Muon split: hidden matrices apart from embeddings, the output head and everything else."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from groupwise.partition._base import (
    ParamInfo,
    Scheme,
    assign_by,
    iter_modules_of,
    register_scheme,
)
from groupwise.partition._by_name import compile_pattern

_HeadRule = Callable[[ParamInfo], bool]


@register_scheme
class Role(Scheme):
    """Label by the role a tensor plays, which decides whether Muon may take it.

    Rule, first match wins: ``head`` (names matching ``head``; by default the parameters of
    the last ``nn.Linear`` registered), ``embedding`` (parameters of embedding modules),
    ``vector`` (ndim < 2: biases, norm gains, scalars), ``other`` (ndim > 2: conv kernels),
    ``matrix`` (the remaining 2-D weights of hidden layers, Muon's domain).
    """

    name = "role"
    labels = ("matrix", "embedding", "head", "vector", "other")

    def __init__(self, *, head: str | None = None) -> None:
        self.head = None if head is None else compile_pattern("role option 'head'", head)

    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]:
        is_head = self._head_rule(model)

        def label(info: ParamInfo) -> str:
            if is_head(info):
                return "head"
            if isinstance(info.owner, nn.Embedding | nn.EmbeddingBag):
                return "embedding"
            if info.ndim < 2:
                return "vector"
            return "other" if info.ndim > 2 else "matrix"

        return assign_by(params, label)

    def _head_rule(self, model: nn.Module) -> _HeadRule:
        if self.head is not None:
            pattern = self.head
            return lambda info: pattern.search(info.name) is not None
        linears = [name for name, _ in iter_modules_of(model, nn.Linear)]
        if not linears:
            return lambda info: False
        last = linears[-1]
        return lambda info: info.owner_name == last
