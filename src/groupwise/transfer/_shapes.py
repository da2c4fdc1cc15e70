"""How each tensor of a proxy model grows in its wider target: fan-in and fan-out from the
two shapes, the kind of layer that makes it (Everett et al. 2024's classes), and the refusals
when two models are not one architecture at two widths.

A tensor's fan-out is its first dimension and its fan-in the rest (``nn.Linear``, convs,
recurrent and attention projections), except a lookup table's (``nn.Embedding``), whose rows
are its inputs. By how they change from proxy to target:

- ``hidden``: fan-in and fan-out both grow (hidden matrices: attention, MLP);
- ``readout``: fan-in grows, fan-out fixed (the output layer);
- ``input``: fan-in fixed, fan-out grows (embeddings, an input projection);
- ``vector``: fewer than 2 dimensions (biases, norm gains), whatever their size;
- ``fixed``: nothing grows (every tensor, when the widths are equal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from torch import nn

from groupwise.errors import ConfigError, format_names
from groupwise.partition import ParamInfo, trainable_parameters

__all__ = ["KINDS", "Kind", "TensorWidth", "tensor_widths"]

Kind = Literal["input", "hidden", "readout", "vector", "fixed"]
KINDS: tuple[Kind, ...] = ("input", "hidden", "readout", "vector", "fixed")


@dataclass(frozen=True)
class TensorWidth:
    """One tensor in the proxy and in the target."""

    name: str
    kind: Kind
    proxy_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    fan_in: tuple[int, int]  # proxy, target
    fan_out: tuple[int, int]
    # the same tensor under its other names, in their own layers' roles (a head tied to the
    # embedding is a readout there): a rule gives it the smaller multiplier of its roles
    also: tuple[TensorWidth, ...] = ()

    @property
    def m_in(self) -> float:
        """How many times wider the target's fan-in is."""
        return self.fan_in[1] / self.fan_in[0]

    @property
    def m_out(self) -> float:
        return self.fan_out[1] / self.fan_out[0]


def tensor_widths(
    proxy: nn.Module, target: nn.Module, kinds: Mapping[str, Kind] | None = None
) -> dict[str, TensorWidth]:
    """Every trainable tensor of ``proxy`` with its counterpart in ``target``, by name.

    ``kinds`` names the kind of a tensor whose layer cannot tell it (a matrix registered on
    the model itself). Raises ConfigError when the two are not one architecture (names or
    ranks differ) or a tensor's kind cannot be told."""
    given = dict(kinds or {})
    bad = {k: v for k, v in given.items() if v not in KINDS}
    if bad:
        name, kind = next(iter(bad.items()))
        raise ConfigError(f"transfer roles: {name}: {kind!r} is not a kind; one of {KINDS}")
    ours, theirs = _params(proxy), _params(target)
    _same_architecture(ours, theirs)
    widths = {}
    for name, info in ours.items():
        widths[name] = _width(info, theirs[name], given.get(name))
    tied_theirs = _tied(target)
    for name, aliases in _tied(proxy).items():
        counterparts = {a.name: a for a in tied_theirs.get(name, [])}
        also = tuple(
            _width(a, counterparts[a.name], None) for a in aliases if a.name in counterparts
        )
        widths[name] = replace(widths[name], also=also)
    unknown = sorted(set(given) - set(widths))
    if unknown:
        raise ConfigError(
            f"transfer roles: {format_names(unknown)} name no trainable parameter of the proxy"
        )
    return widths


def _params(model: nn.Module) -> dict[str, ParamInfo]:
    return {info.name: info for info in trainable_parameters(model)}


def _tied(model: nn.Module) -> dict[str, list[ParamInfo]]:
    """A shared tensor's other names (each with the layer that uses it), by its first name."""
    first: dict[int, str] = {}
    aliases: dict[str, list[ParamInfo]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if not param.requires_grad:
            continue
        if id(param) not in first:
            first[id(param)] = name
            continue
        owner = name.rpartition(".")[0]
        top = name.split(".", 1)[0] if owner else ""
        info = ParamInfo(name, param, model.get_submodule(owner), owner, top)
        aliases.setdefault(first[id(param)], []).append(info)
    return aliases


def _same_architecture(proxy: Mapping[str, ParamInfo], target: Mapping[str, ParamInfo]) -> None:
    missing = [name for name in proxy if name not in target]  # in the models' order
    extra = [name for name in target if name not in proxy]
    if missing or extra:
        told = [f"not in the target: {format_names(missing)}"] if missing else []
        told += [f"only in the target: {format_names(extra)}"] if extra else []
        raise ConfigError(
            f"the target is another architecture ({'; '.join(told)}); a config transfers "
            "across width only: the same layers under the same names, other sizes"
        )
    for name, info in proxy.items():
        other = target[name].param
        if other.ndim != info.ndim:
            raise ConfigError(
                f"the target is another architecture: {name} is {info.ndim}-D in the proxy "
                f"{tuple(info.param.shape)} and {other.ndim}-D in the target "
                f"{tuple(other.shape)}; a config transfers across width only"
            )


def _width(info: ParamInfo, other: ParamInfo, kind: Kind | None) -> TensorWidth:
    table = isinstance(info.owner, nn.Embedding | nn.EmbeddingBag)
    if kind is None and info.owner_name == "" and info.ndim >= 2:
        raise ConfigError(
            f"the role of {info.name} {tuple(info.param.shape)} cannot be told: it is "
            "registered on the model itself, not on a layer; register it on an nn.Embedding "
            "or nn.Linear, or name its kind: groupwise.transfer(..., roles={"
            f"{info.name!r}: 'input'}}) (one of {', '.join(KINDS)})"
        )
    shapes = tuple(info.param.shape), tuple(other.param.shape)
    fans = [_fans(shape, table) for shape in shapes]
    fan_in, fan_out = (fans[0][0], fans[1][0]), (fans[0][1], fans[1][1])
    told = kind or _kind(info.ndim, table, fan_in, fan_out)
    return TensorWidth(info.name, told, shapes[0], shapes[1], fan_in, fan_out)


def _fans(shape: tuple[int, ...], table: bool) -> tuple[int, int]:
    """(fan-in, fan-out) of a tensor of this shape."""
    if len(shape) < 2:
        return 1, math.prod(shape)
    if table:  # a lookup table: rows are the inputs
        return shape[0], math.prod(shape[1:])
    return math.prod(shape[1:]), shape[0]


def _kind(ndim: int, table: bool, fan_in: tuple[int, int], fan_out: tuple[int, int]) -> Kind:
    if ndim < 2:
        return "vector"
    if table:
        return "input"
    grows_in, grows_out = fan_in[0] != fan_in[1], fan_out[0] != fan_out[1]
    if grows_in:
        return "hidden" if grows_out else "readout"
    return "input" if grows_out else "fixed"
