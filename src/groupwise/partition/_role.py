"""The Muon split: hidden matrices apart from embeddings, the output head and everything else."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from torch import nn

from groupwise.config import SchemeChoice
from groupwise.partition._base import (
    ParamInfo,
    Scheme,
    assign_by,
    iter_modules_of,
    partition_with_notes,
    register_scheme,
)
from groupwise.partition._by_name import compile_pattern
from groupwise.partition._simple import is_embedding

_HeadRule = Callable[[ParamInfo], bool]

ROLES = ("matrix", "embedding", "head", "vector", "other")


@register_scheme
class Role(Scheme):
    """Label by the role a tensor plays, which decides whether Muon may take it.

    Rule, first match wins: ``head`` (names matching ``head``; by default the parameters of
    the last ``nn.Linear`` registered), ``embedding`` (parameters of embedding modules),
    ``vector`` (ndim < 2: biases, norm gains, scalars), ``other`` (ndim > 2: conv kernels),
    ``matrix`` (the remaining 2-D weights of hidden layers, Muon's domain).

    A parameter of 2 or more dimensions registered on the model itself, not on a layer, has
    no layer to tell its role: it is most often a learned positional embedding or a lookup
    table, which Muon must not take, so it goes with ``embedding`` (and :meth:`notes` says so).
    """

    name = "role"
    labels = ROLES

    def __init__(self, *, head: str | None = None) -> None:
        self.head = None if head is None else compile_pattern("role option 'head'", head)

    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]:
        is_head = self._head_rule(model)

        def label(info: ParamInfo) -> str:
            if is_head(info):
                return "head"
            if is_embedding(info):  # a table, or 2+ dims on the model itself (class docstring)
                return "embedding"
            if info.ndim < 2:
                return "vector"
            return "other" if info.ndim > 2 else "matrix"

        return assign_by(params, label)

    def notes(
        self, model: nn.Module, params: Sequence[ParamInfo], groups: Mapping[str, Sequence[str]]
    ) -> list[str]:
        embeddings = set(groups.get("embedding", ()))  # not the head (a model that is a Linear)
        found = [
            f"parameter {info.name!r} {tuple(info.param.shape)} is registered on the model "
            "itself, so its role cannot be told; it goes with 'embedding' (never with Muon's "
            "matrices), as a learned positional embedding should"
            for info in params
            if info.owner_name == "" and info.ndim >= 2 and info.name in embeddings
        ]
        if self.head is not None and not groups.get("head"):
            found.append(
                f"option head {self.head.pattern!r} matches no trainable parameter, so there "
                "is no 'head' group (a head tied to the embedding is listed once, under the "
                "embedding's name)"
            )
        return found

    def _head_rule(self, model: nn.Module) -> _HeadRule:
        if self.head is not None:
            pattern = self.head
            return lambda info: pattern.search(info.name) is not None
        linears = [name for name, _ in iter_modules_of(model, nn.Linear)]
        if not linears:
            return lambda info: False
        last = linears[-1]
        return lambda info: info.owner_name == last


def tensor_roles(model: nn.Module) -> dict[str, str]:
    """Each trainable parameter's role (``matrix``, ``embedding``, ``head``, ``vector`` or
    ``other``) by the ``role`` scheme's rule with its default head: what decides whether an
    optimizer meant for some roles (Muon: hidden matrices) may be offered a tensor."""
    groups = partition_with_notes(model, SchemeChoice("role"))[0]
    return {name: label for label, names in groups.items() for name in names}
