"""Absolute search spaces: each group's optimizer, lr and settings drawn per group, shared,
or (lr) tied across depth blocks by one decay factor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from groupwise.config import GroupConfig, TrialConfig
from groupwise.sampling._facts import PartitionFacts, Variant
from groupwise.sampling._suggest import Suggester, suggest, widest
from groupwise.studyfiles import SearchSpace, Sharing

__all__ = ["sample_absolute"]


def sample_absolute(
    trial: Suggester, space: SearchSpace, facts: PartitionFacts, variant: Variant
) -> TrialConfig:
    """Each group's optimizer and settings, per group or shared as ``space.sharing`` says."""
    labels = list(variant.groups)
    sharing = space.sharing

    if sharing.optimizer == "shared":
        shared_kind = trial.suggest_categorical("optimizer", list(facts.shared_valid))
        kinds = dict.fromkeys(labels, shared_kind)
    else:
        kinds = {
            label: trial.suggest_categorical(f"{label}.optimizer", list(facts.valid[label]))
            for label in labels
        }

    lrs = _learning_rates(trial, space, labels, kinds)
    groups = {}
    for label in labels:
        kind = kinds[label]
        hyper: dict[str, Any] = dict(space.fixed(kind))
        for key, domain in space.domains(kind).items():
            if key == "lr":
                continue
            hyper[key] = suggest(trial, _setting_name(label, kind, key, sharing), domain)
        if label in lrs:
            hyper["lr"] = lrs[label]
        groups[label] = GroupConfig(kind, hyper)
    return TrialConfig(variant.choice, groups)


def _setting_name(label: str, kind: str, key: str, sharing: Sharing) -> str:
    """Per group: ``<label>.<key>``. Shared: one value per optimizer kind (``<kind>.<key>``),
    or plain ``<key>`` when every group has the same kind. Optuna returns the value already
    drawn when a trial suggests a name twice, which is what ties the groups together."""
    if sharing.hyperparameters == "per_group":
        return f"{label}.{key}"
    return key if sharing.optimizer == "shared" else f"{kind}.{key}"


def _learning_rates(
    trial: Suggester, space: SearchSpace, labels: list[str], kinds: Mapping[str, str]
) -> dict[str, float]:
    # A list, never a set: the order of suggest_* calls must not depend on PYTHONHASHSEED.
    searched = [label for label in labels if "lr" in space.domains(kinds[label])]
    if not searched:
        return {}
    mode = space.sharing.lr
    if mode == "per_group":
        return {
            label: suggest(trial, f"{label}.lr", space.domains(kinds[label])["lr"])
            for label in searched
        }
    domain = widest([space.domains(kinds[label])["lr"] for label in searched])
    base = suggest(trial, "lr", domain)
    if mode == "shared":
        return dict.fromkeys(searched, base)
    # layerwise: the last block takes lr; each block before it lr_decay times the next one's
    decay = suggest(trial, "lr_decay", space.sharing.lr_decay.domain())
    order = sorted(searched, key=lambda label: int(label.removeprefix("block")))
    return {label: base * decay ** (len(order) - 1 - i) for i, label in enumerate(order)}
