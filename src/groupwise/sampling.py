"""Sampling: a trial + SearchSpace + partition facts -> TrialConfig. The only caller of suggest_*.

Rules, and why:

- Parameter names are stable: ``scheme``, one name per scheme option (``depth.blocks``),
  ``<label>.optimizer``, ``<label>.<hyperparameter>``; with shared choices ``optimizer``,
  ``lr``, ``<hyperparameter>``; layer-wise decay ``lr`` and ``lr_decay``. The same label in
  two schemes shares its parameters, so the sampler learns across schemes.
- Validity-aware: a label is only offered optimizers whose constraints every tensor it can
  hold meets (torch's Muon: 2-D only). Facts are computed once per study, over every scheme
  variant the space allows, so a parameter's choices never change between trials (Optuna
  requires that of categorical parameters).
- Schemes that would make more groups than ``sharing.max_groups`` are never offered.
- Canonical key: two configs that give every parameter the same optimizer and settings
  train identically, whatever their schemes; the key lets the driver reuse the first result
  instead of training the same thing twice.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from groupwise.config import GroupConfig, SchemeChoice, TrialConfig
from groupwise.domains import Categorical, Domain, FloatRange, IntRange, TupleOf
from groupwise.errors import PartitionError, SpecError
from groupwise.optim import get_optimizer
from groupwise.partition import partition_with_notes, trainable_parameters
from groupwise.spec import Choices, IntSpan, SchemeRange, SearchSpace, Sharing

__all__ = [
    "PartitionFacts",
    "Suggester",
    "canonical_key",
    "groups_of",
    "partition_facts",
    "sample",
]


class Suggester(Protocol):
    """What sampling needs of an ``optuna.Trial``."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class Variant:
    """One concrete scheme (options fixed) and the groups it makes on the task's model."""

    key: str
    choice: SchemeChoice
    groups: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class PartitionFacts:
    """What the sampler needs to know of the model, computed once per study."""

    variants: Mapping[str, Variant]  # by "<scheme key>|<options json>"
    scheme_keys: tuple[str, ...]  # values of the ``scheme`` parameter
    option_ranges: Mapping[str, Mapping[str, Domain]]  # scheme key -> option -> domain
    valid: Mapping[str, tuple[str, ...]]  # label -> optimizers every variant lets it take
    shared_valid: tuple[str, ...]  # optimizers every label of every variant can take
    tensors: Mapping[str, tuple[tuple[int, ...], int]]  # parameter -> (shape, bytes/element)
    notes: tuple[str, ...] = ()  # what the user should hear: options that did nothing, cuts

    def variant(self, scheme_key: str, options: Mapping[str, Any]) -> Variant:
        return self.variants[_variant_id(scheme_key, options)]


def partition_facts(
    model: nn.Module, space: SearchSpace, source: str = "search space"
) -> PartitionFacts:
    """Partition ``model`` every way the space allows and work out each label's valid optimizers.

    Raises SpecError (naming ``source``) when no scheme fits, or a label can take none of the
    allowed optimizers.
    """
    named = {p.name: p.param for p in trainable_parameters(model)}
    variants, option_ranges, notes = _variants(model, space, source)
    allowed = list(space.optimizers)
    valid = _valid_optimizers(variants, named, allowed, source)
    shared = set(allowed).intersection(*valid.values())
    if space.sharing.optimizer == "shared" and not shared:
        raise SpecError(
            f"{source}: sharing.optimizer is 'shared', but no allowed optimizer fits every group; "
            "allow one without constraints, such as adamw"
        )
    return PartitionFacts(
        variants=variants,
        scheme_keys=tuple(k for k in (s.key for s in space.schemes) if k in option_ranges),
        option_ranges=option_ranges,
        valid={label: tuple(o for o in allowed if o in kinds) for label, kinds in valid.items()},
        shared_valid=tuple(o for o in allowed if o in shared),
        tensors={n: (tuple(p.shape), p.element_size()) for n, p in named.items()},
        notes=tuple(notes),
    )


def _variants(
    model: nn.Module, space: SearchSpace, source: str
) -> tuple[dict[str, Variant], dict[str, dict[str, Domain]], list[str]]:
    """Every concrete scheme the space allows that partitions ``model`` within max_groups,
    each scheme's option ranges cut down to the values that did, and notes for the user:
    what a scheme says of this split, and a range that had to be cut."""
    variants: dict[str, Variant] = {}
    option_ranges: dict[str, dict[str, Domain]] = {}
    problems: list[str] = []
    notes: dict[str, None] = {}  # ordered and without repeats
    for index, scheme in enumerate(space.schemes):
        where = f"{source}: schemes[{index}] ({scheme.key})"
        ranges, combos = _option_combinations(scheme)
        kept, dropped = [], []
        for options in combos:
            choice = SchemeChoice(scheme.name, {**_fixed_options(scheme), **options})
            try:
                groups, said = partition_with_notes(model, choice)
            except PartitionError as e:
                problems.append(f"{scheme.key}: {e}")
                dropped.append(f"{options}: {e}")
                continue
            if space.sharing.max_groups is not None and len(groups) > space.sharing.max_groups:
                problems.append(f"{scheme.key} {options}: {len(groups)} groups > max_groups")
                dropped.append(f"{options}: {len(groups)} groups > max_groups")
                continue
            notes.update((f"{where}: {note}", None) for note in said)
            variant = Variant(scheme.key, choice, {k: tuple(v) for k, v in groups.items()})
            variants[_variant_id(scheme.key, options)] = variant
            kept.append(options)
        if kept:
            option_ranges[scheme.key] = _narrowed(ranges, kept)
            if dropped:
                notes[f"{where}: {_cut(ranges, option_ranges[scheme.key], dropped)}"] = None
    if not variants:
        raise SpecError(
            f"{source}: no scheme in the space fits {type(model).__name__}: {'; '.join(problems)}"
        )
    return variants, option_ranges, list(notes)


def _cut(before: Mapping[str, Domain], after: Mapping[str, Domain], dropped: list[str]) -> str:
    changed = [
        f"{option} {_span(before[option])} cut to {_span(after[option])}"
        for option in before
        if before[option] != after[option]
    ]
    what = ", ".join(changed) or "some option values dropped"
    return f"{what}, since {dropped[0]}" + (
        f" (+{len(dropped) - 1} more)" if len(dropped) > 1 else ""
    )


def _span(domain: Domain) -> str:
    if isinstance(domain, IntRange):
        return f"{domain.low}..{domain.high}"
    if isinstance(domain, Categorical):
        return f"{list(domain.choices)}"
    return str(domain)


def _valid_optimizers(
    variants: Mapping[str, Variant], named: Mapping[str, Any], allowed: list[str], source: str
) -> dict[str, set[str]]:
    """Label -> the allowed optimizers every tensor it holds, in every variant, can take."""
    valid: dict[str, set[str]] = {}
    for variant in variants.values():
        for label, names in variant.groups.items():
            fits = {o for o in allowed if get_optimizer(o).fits(named[n] for n in names)}
            valid[label] = valid.get(label, fits) & fits
    for label, kinds in valid.items():
        if not kinds:
            raise SpecError(
                f"{source}: group {label!r} can take none of the allowed optimizers {allowed} "
                "(torch's Muon takes 2-D tensors only); allow an optimizer without constraints, "
                "such as adamw"
            )
    return valid


def sample(trial: Suggester, space: SearchSpace, facts: PartitionFacts) -> TrialConfig:
    """Draw one TrialConfig, define-by-run."""
    scheme_key = trial.suggest_categorical("scheme", list(facts.scheme_keys))
    scheme_name = scheme_key.split("(")[0]
    options = {
        option: _suggest(trial, f"{scheme_name}.{option}", domain)
        for option, domain in facts.option_ranges[scheme_key].items()
    }
    variant = facts.variant(scheme_key, options)
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
            hyper[key] = _suggest(trial, _setting_name(label, kind, key, sharing), domain)
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
            label: _suggest(trial, f"{label}.lr", space.domains(kinds[label])["lr"])
            for label in searched
        }
    domain = _widest([space.domains(kinds[label])["lr"] for label in searched])
    base = _suggest(trial, "lr", domain)
    if mode == "shared":
        return dict.fromkeys(searched, base)
    # layerwise: the last block takes lr; each block before it lr_decay times the next one's
    decay = _suggest(trial, "lr_decay", space.sharing.lr_decay.domain())
    order = sorted(searched, key=lambda label: int(label.removeprefix("block")))
    return {label: base * decay ** (len(order) - 1 - i) for i, label in enumerate(order)}


def groups_of(config: TrialConfig, facts: PartitionFacts) -> Mapping[str, tuple[str, ...]]:
    """Label -> parameter names, for a config sampled from this study."""
    return facts.variants[_variant_key_for(config, facts)].groups


def canonical_key(config: TrialConfig, facts: PartitionFacts) -> str:
    """Equal for configs that give every parameter the same optimizer and settings."""
    groups = groups_of(config, facts)
    merged: dict[str, list[str]] = {}
    for label, group in config.groups.items():
        setting = json.dumps([group.optimizer, sorted(group.hyperparameters.items())], default=str)
        merged.setdefault(setting, []).extend(groups[label])
    canonical = sorted((sorted(names), setting) for setting, names in merged.items())
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()[:20]


def _variant_key_for(config: TrialConfig, facts: PartitionFacts) -> str:
    for vid, variant in facts.variants.items():
        if variant.choice == config.scheme:
            return vid
    raise KeyError(f"scheme {config.scheme} is not a variant of this search space")


def _suggest(trial: Suggester, name: str, domain: Domain) -> Any:
    if isinstance(domain, FloatRange):
        if domain.low == domain.high:
            return domain.low
        return trial.suggest_float(name, domain.low, domain.high, log=domain.log)
    if isinstance(domain, IntRange):
        if domain.low == domain.high:
            return domain.low
        return trial.suggest_int(name, domain.low, domain.high, log=domain.log)
    if isinstance(domain, Categorical):
        return trial.suggest_categorical(name, list(domain.choices))
    if isinstance(domain, TupleOf):
        return tuple(_suggest(trial, f"{name}.{i}", d) for i, d in enumerate(domain.items))
    raise TypeError(f"unknown domain {domain!r}")


def _widest(domains: list[Domain]) -> Domain:
    floats = [d for d in domains if isinstance(d, FloatRange)]
    if len(floats) != len(domains):
        return domains[0]
    return FloatRange(
        min(d.low for d in floats), max(d.high for d in floats), all(d.log for d in floats)
    )


def _option_combinations(scheme: SchemeRange) -> tuple[dict[str, Domain], list[dict[str, Any]]]:
    ranges: dict[str, Domain] = {}
    values: dict[str, list[Any]] = {}
    for option, value in scheme.options.items():
        if isinstance(value, IntSpan):
            ranges[option] = value.domain()
            values[option] = list(range(value.low, value.high + 1))
        elif isinstance(value, Choices):
            ranges[option] = value.domain()
            values[option] = list(value.choices)
    combos = [
        dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())
    ]
    return ranges, combos


def _fixed_options(scheme: SchemeRange) -> dict[str, Any]:
    return {k: v for k, v in scheme.options.items() if not isinstance(v, IntSpan | Choices)}


def _narrowed(ranges: Mapping[str, Domain], kept: list[dict[str, Any]]) -> dict[str, Domain]:
    """Option ranges cut down to the values that gave a usable partition."""
    out: dict[str, Domain] = {}
    for option, domain in ranges.items():
        seen = [combo[option] for combo in kept]
        if isinstance(domain, IntRange):
            out[option] = IntRange(min(seen), max(seen), domain.log)
        elif isinstance(domain, Categorical):
            out[option] = Categorical(tuple(c for c in domain.choices if c in seen))
        else:
            out[option] = domain
    return out


def _variant_id(scheme_key: str, options: Mapping[str, Any]) -> str:
    return f"{scheme_key}|{json.dumps(dict(sorted(options.items())), default=str)}"
