"""Partition facts: a model partitioned every way a search space allows, computed once per
study, and what each group may take. Optuna requires a categorical parameter's choices never
to change between trials, so every choice sampling offers is fixed here."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from groupwise.config import SchemeChoice
from groupwise.domains import Categorical, Domain, IntRange
from groupwise.errors import PartitionError, SpecError
from groupwise.optim import get_optimizer
from groupwise.partition import partition_with_notes, tensor_roles, trainable_parameters
from groupwise.studyfiles import Choices, IntSpan, SchemeRange, SearchSpace

__all__ = ["PartitionFacts", "Variant", "partition_facts", "variant_id"]


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
        return self.variants[variant_id(scheme_key, options)]


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
    valid = _valid_optimizers(variants, _Tensors(named, tensor_roles(model)), space, source)
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
            variants[variant_id(scheme.key, options)] = variant
            kept.append(options)
        if kept:
            option_ranges[scheme.key] = _narrowed(ranges, kept)
            if dropped:
                notes[f"{where}: {_cut(ranges, option_ranges[scheme.key], dropped)}"] = None
        elif dropped:
            notes[f"{where}: left out, it does not fit this model: {dropped[0]}"] = None
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


@dataclass(frozen=True)
class _Tensors:
    """The model's trainable tensors by name, and each one's role (``tensor_roles``)."""

    named: Mapping[str, Any]
    roles: Mapping[str, str]

    def fit(self, space: SearchSpace, kind: str, names: tuple[str, ...]) -> bool:
        """Whether every one of ``names`` meets ``kind``'s constraints (torch's Muon: 2-D) and
        plays a role the space offers ``kind`` to (Muon: hidden matrices, unless widened)."""
        roles = space.roles_for(kind)
        if roles is not None and any(self.roles[n] not in roles for n in names):
            return False
        return bool(get_optimizer(kind).fits(self.named[n] for n in names))


def _valid_optimizers(
    variants: Mapping[str, Variant], tensors: _Tensors, space: SearchSpace, source: str
) -> dict[str, set[str]]:
    """Label -> the allowed optimizers every tensor it holds, in every variant, can take."""
    allowed = list(space.optimizers)
    valid: dict[str, set[str]] = {}
    for variant in variants.values():
        for label, names in variant.groups.items():
            fits = {o for o in allowed if tensors.fit(space, o, names)}
            valid[label] = valid.get(label, fits) & fits
    for label, kinds in valid.items():
        if not kinds:
            raise SpecError(
                f"{source}: group {label!r} can take none of the allowed optimizers {allowed} "
                "(torch's Muon takes 2-D tensors only, and a search offers it hidden matrices "
                "only unless the space's roles say otherwise); allow an optimizer without "
                "constraints, such as adamw"
            )
    return valid


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


def variant_id(scheme_key: str, options: Mapping[str, Any]) -> str:
    return f"{scheme_key}|{json.dumps(dict(sorted(options.items())), default=str)}"
