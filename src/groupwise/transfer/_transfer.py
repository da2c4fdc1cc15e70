"""A config searched on a narrow proxy, carried to a wider target: each group's lr times its
tensors' multiplier under a rule (:mod:`._rules`); a group whose tensors need different
multipliers is split, and the config says so."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from groupwise.config import GroupConfig, SchemeChoice, TrialConfig
from groupwise.errors import ConfigError
from groupwise.optim import get_optimizer
from groupwise.partition import partition
from groupwise.transfer._rules import RULES, Family, Rule, family_of
from groupwise.transfer._shapes import Kind, TensorWidth, tensor_widths

__all__ = ["TensorScale", "Transferred", "plan_transfer", "transfer"]

DIGITS = 12  # multipliers equal to this many significant digits are one


@dataclass(frozen=True)
class TensorScale:
    """One tensor's part in a transfer: its group, kind, and lr multiplier."""

    name: str
    label: str  # its group in the proxy's config
    kind: Kind
    optimizer: str
    m_in: float
    m_out: float
    multiplier: float


@dataclass(frozen=True)
class Transferred:
    """The target's config, how each tensor got its lr, and what the user should know."""

    config: TrialConfig
    rule: str
    tensors: tuple[TensorScale, ...]
    notes: tuple[str, ...]
    split: tuple[str, ...] = ()  # the proxy's groups that were split (scheme then by_name)


def transfer(
    config: TrialConfig,
    proxy_model: nn.Module,
    target_model: nn.Module,
    rule: str = "sp-per-layer",
    *,
    roles: Mapping[str, Kind] | None = None,
) -> TrialConfig:
    """``config``, searched on ``proxy_model``, carried to ``target_model`` (the same
    architecture, wider): every group's lr multiplied as ``rule`` says for its tensors.

    Rules: ``sp-per-layer`` (the default; Everett et al. 2024's per-layer exponents for a
    model in standard parametrization, which needs no change to the model), ``mup`` (for a
    model built in μP: its init, output multiplier and attention scale), ``none`` (a copy).
    ``roles`` names the kind (``input``, ``hidden``, ``readout``, ``vector``) of a tensor
    whose layer cannot tell it. See :func:`plan_transfer` for the per-tensor record."""
    return plan_transfer(config, proxy_model, target_model, rule, roles=roles).config


def plan_transfer(
    config: TrialConfig,
    proxy_model: nn.Module,
    target_model: nn.Module,
    rule: str = "sp-per-layer",
    *,
    roles: Mapping[str, Kind] | None = None,
) -> Transferred:
    """:func:`transfer`, with each tensor's multiplier and the notes (a split group, a tied
    output layer)."""
    scale = RULES.get(rule, "transfer rule")
    config = TrialConfig.from_dict(config)
    widths = tensor_widths(proxy_model, target_model, roles)
    groups = _labels(config, proxy_model, target_model)
    tensors = []
    for label, names in groups.items():
        group = config.groups[label]
        where = f"config.groups.{label}"
        family = None if rule == "none" else family_of(group.optimizer, rule, where)
        for name in names:
            t = widths[name]
            m, kind = _multiplier(t, family, group.hyperparameters, scale)
            tensors.append(TensorScale(name, label, kind, group.optimizer, t.m_in, t.m_out, m))
    new, notes, split = _rebuild(config, groups, tensors, rule)
    told = [_tied_note(widths[t.name], t) for t in tensors if widths[t.name].also]
    return Transferred(new, rule, tuple(tensors), tuple(notes + told), split)


def _multiplier(
    width: TensorWidth, family: Family | None, hyper: Mapping[str, Any], scale: Rule
) -> tuple[float, Kind]:
    """A tensor's lr multiplier and the role that set it: a tied tensor serves several layers
    and takes the smallest multiplier of its roles (the one that keeps every use stable)."""
    if family is None:
        return 1.0, width.kind
    return min(
        ((scale(w, family, hyper), w.kind) for w in (width, *width.also)), key=lambda o: o[0]
    )


def _labels(config: TrialConfig, proxy: nn.Module, target: nn.Module) -> dict[str, list[str]]:
    groups = partition(proxy, config.scheme)
    theirs = partition(target, config.scheme)
    if {k: sorted(v) for k, v in groups.items()} != {k: sorted(v) for k, v in theirs.items()}:
        raise ConfigError(
            f"scheme {config.scheme}: splits the target into other groups than the proxy "
            "(a transfer keeps every tensor in its group); transfer a config whose scheme "
            "does not depend on width"
        )
    missing = sorted(set(groups) - set(config.groups))
    if missing:
        raise ConfigError(
            f"config: scheme {config.scheme} gives the proxy groups {missing} the config has "
            "no settings for; is it the proxy's config?"
        )
    return groups


def _rebuild(
    config: TrialConfig,
    groups: Mapping[str, list[str]],
    tensors: list[TensorScale],
    rule: str,
) -> tuple[TrialConfig, list[str], tuple[str, ...]]:
    """The target's groups: each label's lr times its multiplier, or, where its tensors have
    several, one label per (kind, multiplier), under a ``by_name`` scheme naming each tensor."""
    by_label: dict[str, list[TensorScale]] = {}
    for t in tensors:
        by_label.setdefault(t.label, []).append(t)
    new_groups: dict[str, GroupConfig] = {}
    members: dict[str, list[str]] = {}
    notes, split = [], []
    for label, scales in by_label.items():
        parts = _parts(label, scales)
        if len(parts) > 1:
            split.append(label)
            told = ", ".join(
                f"{sub} x{_short(ts[0].multiplier)} ({len(ts)})" for sub, ts in parts.items()
            )
            notes.append(
                f"group {label!r} holds tensors that need different lr multipliers under "
                f"{rule}; it is split: {told}"
            )
        for sub, ts in parts.items():
            new_groups[sub] = _scaled(config.groups[label], ts[0].multiplier)
            members[sub] = [t.name for t in ts]
    if not split:
        return replace(config, groups=new_groups), notes, ()
    patterns = {
        sub: "^(?:" + "|".join(re.escape(n) for n in names) + ")$" for sub, names in members.items()
    }
    scheme = SchemeChoice("by_name", {"patterns": patterns})
    notes.append(
        f"the config's scheme is by_name (each split group names its tensors), not {config.scheme}"
    )
    return replace(config, scheme=scheme, groups=new_groups), notes, tuple(split)


def _parts(label: str, scales: list[TensorScale]) -> dict[str, list[TensorScale]]:
    """A label's tensors by multiplier: one part keeps the label; several are named by the
    kinds each holds (``linear.hidden+readout``, ``linear.input+vector``)."""
    by_m: dict[float, list[TensorScale]] = {}
    for t in scales:
        by_m.setdefault(float(f"{t.multiplier:.{DIGITS}g}"), []).append(t)
    if len(by_m) == 1:
        return {label: scales}
    parts: dict[str, list[TensorScale]] = {}
    for ts in by_m.values():
        kinds = "+".join(dict.fromkeys(t.kind for t in ts))
        sub, n = f"{label}.{kinds}", 2
        while sub in parts:
            sub, n = f"{label}.{kinds}.{n}", n + 1
        parts[sub] = ts
    return parts


def _scaled(group: GroupConfig, multiplier: float) -> GroupConfig:
    if multiplier == 1.0:
        return group
    hyper: dict[str, Any] = dict(group.hyperparameters)
    lr = hyper.get("lr", get_optimizer(group.optimizer).defaults.get("lr"))
    if not isinstance(lr, int | float):
        raise ConfigError(
            f"optimizer {group.optimizer!r}: no numeric lr to scale (got {lr!r}); "
            "give the group an lr"
        )
    hyper["lr"] = float(f"{lr * multiplier:.{DIGITS}g}")
    return GroupConfig(group.optimizer, hyper)


def _tied_note(width: TensorWidth, scale: TensorScale) -> str:
    names = ", ".join(f"{a.name} ({a.kind})" for a in width.also)
    return (
        f"{names} is tied to {width.name} ({width.kind}): one tensor in several roles takes "
        f"the smallest multiplier of them, x{_short(scale.multiplier)} ({scale.kind})"
    )


def _short(x: float) -> str:
    return f"{x:.4g}"
