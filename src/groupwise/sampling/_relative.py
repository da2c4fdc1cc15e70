"""Relative search spaces: a shared base and per-group deviations.

    optimizer, lr, <base>.<setting>      the base: one kind, one lr, its settings
    <label>.optimizer                    "base" or an override kind the group fits (if any)
    <label>.lr_scale                     the group's lr as a multiple of the base lr (not
                                         for a scheme of one group: its lr is the base lr)
    <label>.decay                        keep the base weight decay (true) or none (false)
    <kind>.<setting>                     an override's settings, shared by its groups

Why: with independent per-group values, "one good optimizer everywhere" is a thin diagonal of a
10+ dimensional space, and a search of a few dozen trials rarely lands on it. Here it is the
point where every scale is 1, every decay kept and no group overridden, and a search starts
from it (the recipes enqueue it) and moves away only where that pays.

A scheme of one group (``single``) has no lr multiplier: it would only repeat the base lr, and
a sampler that models the two apart (TPE with ``group``: a scheme's own names are a group of
their own) cannot learn that only their product matters, so every one-optimizer trial after
the first ones landed at a random multiple of a good lr (BENCHMARKS.md, "A one-group scheme
takes the base lr").
"""

from __future__ import annotations

from typing import Any

from groupwise.config import GroupConfig, TrialConfig
from groupwise.sampling._facts import PartitionFacts, Variant
from groupwise.sampling._suggest import Suggester, suggest, widest
from groupwise.studyfiles import Relative, SearchSpace

__all__ = ["BASE", "BASE_LR", "base_kinds", "override_choices", "sample_relative"]

BASE = "base"  # the <label>.optimizer choice that keeps the base optimizer
BASE_LR = "lr"  # the base lr's parameter, which every group's lr_scale multiplies


def base_kinds(space: SearchSpace, facts: PartitionFacts) -> tuple[str, ...]:
    """The base kinds that fit every group of every scheme variant (the base takes any)."""
    return tuple(k for k in space.base_kinds() if k in facts.shared_valid)


def override_choices(space: SearchSpace, facts: PartitionFacts, label: str) -> tuple[str, ...]:
    """``<label>.optimizer``'s choices: the base, then each override this group can take."""
    relative = space.sharing.relative
    assert relative is not None
    fits = [kind for kind in relative.override if kind in facts.valid.get(label, ())]
    return (BASE, *fits) if fits else ()


def sample_relative(
    trial: Suggester, space: SearchSpace, facts: PartitionFacts, variant: Variant
) -> TrialConfig:
    relative = space.sharing.relative
    assert relative is not None
    kinds = base_kinds(space, facts)
    base = trial.suggest_categorical("optimizer", list(kinds))
    base_lr = suggest(trial, BASE_LR, widest([space.domains(k)["lr"] for k in kinds]))
    shared = _settings(trial, space, base)
    groups = {}
    scaled = len(variant.groups) > 1  # one group: its lr is the base lr (module text)
    for label in variant.groups:
        choices = override_choices(space, facts, label)
        kind = trial.suggest_categorical(f"{label}.optimizer", list(choices)) if choices else BASE
        if kind != BASE:
            override = _settings(trial, space, kind)
            if "lr" in space.domains(kind):
                override["lr"] = suggest(trial, f"{kind}.lr", space.domains(kind)["lr"])
            groups[label] = GroupConfig(kind, override)
            continue
        lr = base_lr * _scale(trial, relative, label) if scaled else base_lr
        groups[label] = GroupConfig(base, _deviate(trial, relative, label, lr, shared))
    return TrialConfig(variant.choice, groups)


def _settings(trial: Suggester, space: SearchSpace, kind: str) -> dict[str, Any]:
    """A kind's settings but lr: the space's fixed ones, and one draw of each searched one."""
    settings: dict[str, Any] = dict(space.fixed(kind))
    for key, domain in space.domains(kind).items():
        if key != "lr":
            settings[key] = suggest(trial, f"{kind}.{key}", domain)
    return settings


def _scale(trial: Suggester, relative: Relative, label: str) -> float:
    return float(suggest(trial, f"{label}.lr_scale", relative.lr_scale.domain()))


def _deviate(
    trial: Suggester, relative: Relative, label: str, lr: float, shared: dict[str, Any]
) -> dict[str, Any]:
    settings = dict(shared)
    settings["lr"] = lr
    keep = relative.decay == "shared" or "weight_decay" not in settings
    if not keep and not trial.suggest_categorical(f"{label}.decay", [True, False]):
        settings["weight_decay"] = 0.0
    return settings
