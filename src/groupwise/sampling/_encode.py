"""Encoding: a config -> the parameters that make this space's sampler draw it exactly.

Recipes and earlier studies hand a study absolute configs; Optuna enqueues parameters. The
encoder replays :func:`sample` with a suggester that answers each name from the config, then
checks the config comes back unchanged and every answer lies inside its distribution. A config
the space cannot express (a setting outside a range, two groups of one kind with different
settings where the space shares them) raises :class:`NotRepresentableError` saying which.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from groupwise.config import TrialConfig
from groupwise.errors import GroupwiseError
from groupwise.sampling._facts import PartitionFacts
from groupwise.sampling._relative import BASE, base_kinds
from groupwise.sampling._sample import sample
from groupwise.sampling._suggest import widest
from groupwise.schedules import Schedule
from groupwise.studyfiles import SearchSpace

__all__ = ["NotRepresentableError", "encode"]


class NotRepresentableError(GroupwiseError):
    """A config this search space cannot draw; the message says what does not fit."""


def encode(config: TrialConfig, space: SearchSpace, facts: PartitionFacts) -> dict[str, Any]:
    """The sampler parameters (name -> value) under which ``sample`` returns ``config``."""
    variant = next((v for v in facts.variants.values() if v.choice == config.scheme), None)
    if variant is None:
        raise NotRepresentableError(f"scheme {config.scheme} is not one this search space offers")
    if list(variant.groups) != list(config.groups):
        raise NotRepresentableError(
            f"the config's groups {list(config.groups)} are not those scheme {config.scheme} "
            f"makes here {list(variant.groups)}"
        )
    config = _with_schedule(config, space)
    answers = _Answers(config, space, facts, variant.key)
    drawn = sample(answers, space, facts)
    for label, group in config.groups.items():
        got = drawn.groups.get(label)
        if (
            got is None
            or got.optimizer != group.optimizer
            or not _close(dict(got.hyperparameters), dict(group.hyperparameters))
        ):
            raise NotRepresentableError(
                f"this space cannot draw group {label!r} as the config gives it "
                f"({group.optimizer} {dict(group.hyperparameters)}); it would draw "
                f"{got.optimizer if got else '-'} {dict(got.hyperparameters) if got else ''}"
            )
    schedule = [c.schedule.to_data() if c.schedule else None for c in (config, drawn)]
    clips = [config.grad_clip_norm, drawn.grad_clip_norm]
    if not _close(schedule[0], schedule[1]) or not _close(clips[0], clips[1]):
        raise NotRepresentableError(
            f"this space cannot draw the schedule {schedule[0]} (clip {clips[0]}); it would "
            f"draw {schedule[1]} (clip {clips[1]})"
        )
    return answers.given


def _with_schedule(config: TrialConfig, space: SearchSpace) -> TrialConfig:
    """A config without a schedule (a recipe's), on a space with one: the space's default."""
    given = space.schedule
    if given is None or config.schedule is not None:
        return config
    clip = given.default_clip() if config.grad_clip_norm is None else config.grad_clip_norm
    schedule = Schedule(**given.default_schedule())
    return dataclasses.replace(config, schedule=schedule, grad_clip_norm=clip)


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to a relative 1e-9 (an lr rebuilt as base * scale may differ in its
    last bit)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        both = isinstance(a, int | float) and isinstance(b, int | float)
        return both and not isinstance(a, bool) and math.isclose(a, b, rel_tol=1e-9)
    return bool(a == b)


class _Answers:
    """A Suggester whose answers come from a config, each checked against its distribution."""

    def __init__(
        self, config: TrialConfig, space: SearchSpace, facts: PartitionFacts, scheme_key: str
    ) -> None:
        self.config = config
        self.values = _values(config, space, facts, scheme_key)
        self.given: dict[str, Any] = {}

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        value = float(self._value(name))
        if not low <= value <= high:
            raise NotRepresentableError(
                f"{name} = {value:g} is outside the space's {low:g}..{high:g}"
            )
        self.given[name] = value
        return value

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        value = self._value(name)
        if not isinstance(value, int) or not low <= value <= high:
            raise NotRepresentableError(f"{name} = {value!r} is outside the space's {low}..{high}")
        self.given[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._value(name)
        if value not in choices:
            raise NotRepresentableError(
                f"{name} = {value!r} is not one of the space's {list(choices)}"
            )
        return self._give(name, value)

    def _value(self, name: str) -> Any:
        if name in self.given:
            return self.given[name]
        if name not in self.values:
            raise NotRepresentableError(f"the config sets nothing the space calls {name!r}")
        return self.values[name]

    def _give(self, name: str, value: Any) -> Any:
        self.given[name] = value
        return value


def _values(
    config: TrialConfig, space: SearchSpace, facts: PartitionFacts, scheme_key: str
) -> dict[str, Any]:
    """Every name the sampler might ask for, with the value the config implies."""
    scheme_name = scheme_key.split("(")[0]
    values: dict[str, Any] = {"scheme": scheme_key}
    values |= {f"{scheme_name}.{k}": v for k, v in config.scheme.options.items()}
    groups = config.groups
    for label, group in groups.items():  # per group: <label>.optimizer, <label>.<key>
        values[f"{label}.optimizer"] = group.optimizer
        for key, value in group.hyperparameters.items():
            values |= _flat(f"{label}.{key}", value)
    for group in reversed(list(groups.values())):  # shared per kind, and plain shared names
        values |= {f"{group.optimizer}.{k}": v for k, v in _flat_all(group.hyperparameters)}
        values |= dict(_flat_all(group.hyperparameters))
        values["optimizer"] = group.optimizer
    if space.sharing.lr == "layerwise":
        values |= _layerwise(config)
    if space.sharing.relative is not None:
        values |= _relative(config, space, facts)
    if config.schedule is not None:
        values |= {f"schedule.{k}": v for k, v in config.schedule.to_data().items()}
    if config.grad_clip_norm is not None:
        values["grad_clip_norm"] = config.grad_clip_norm
    return values


def _relative(config: TrialConfig, space: SearchSpace, facts: PartitionFacts) -> dict[str, Any]:
    """The base (the kind most groups take, the lr most of them share) and the deviations."""
    kinds = base_kinds(space, facts)
    bases = [g for g in config.groups.values() if g.optimizer in kinds]
    if not bases:
        return {}
    base = Counter(g.optimizer for g in bases).most_common(1)[0][0]
    mine = [g for g in bases if g.optimizer == base]
    allowed = widest([space.domains(k)["lr"] for k in kinds])
    base_lr = _base_lr([float(g.hyperparameters.get("lr", 0.0)) for g in mine], space, allowed)
    decayed = [g for g in mine if g.hyperparameters.get("weight_decay")]
    reference = dict((decayed or mine)[0].hyperparameters)
    if not decayed and "weight_decay" in space.domains(base):
        # No group keeps decay, so the base's is never used: any value of its range will do.
        reference["weight_decay"] = _inside(space.domains(base)["weight_decay"])
    values: dict[str, Any] = {"optimizer": base, "lr": base_lr}
    values |= {f"{base}.{k}": v for k, v in _flat_all(reference) if k != "lr"}
    scaled = len(config.groups) > 1  # one group takes the base lr: no multiplier (sampling)
    for label, group in config.groups.items():
        values[f"{label}.optimizer"] = BASE if group.optimizer == base else group.optimizer
        lr = float(group.hyperparameters.get("lr", 0.0))
        if scaled:
            values[f"{label}.lr_scale"] = lr / base_lr if base_lr else 1.0
        values[f"{label}.decay"] = bool(group.hyperparameters.get("weight_decay"))
    return values


def _base_lr(lrs: list[float], space: SearchSpace, allowed: Any) -> float:
    """A base lr (inside ``allowed``) from which every group's lr is a scale the space allows:
    the lr most groups share if it is one (a recipe's), else the middle of what is feasible."""
    relative = space.sharing.relative
    assert relative is not None
    low = max([allowed.low, *(lr / relative.lr_scale.high for lr in lrs)])
    high = min([allowed.high, *(lr / relative.lr_scale.low for lr in lrs)])
    counts = Counter(lrs)
    for lr in sorted(counts, key=lambda lr: (-counts[lr], -lr)):
        if low <= lr <= high:
            return lr
    return math.sqrt(low * high) if 0 < low <= high else max(lrs)


def _inside(domain: Any) -> Any:
    """A value of a float range (its geometric or plain midpoint)."""
    low, high = domain.low, domain.high
    return math.sqrt(low * high) if getattr(domain, "log", False) else (low + high) / 2


def _layerwise(config: TrialConfig) -> dict[str, Any]:
    """The last block's lr, and the ratio of each block's lr to the next one's."""
    order = sorted(config.groups, key=lambda label: int(label.removeprefix("block")))
    lrs = [float(config.groups[label].hyperparameters.get("lr", 0.0)) for label in order]
    decay = lrs[-2] / lrs[-1] if len(lrs) > 1 and lrs[-1] else 1.0
    return {"lr": lrs[-1], "lr_decay": decay}


def _flat(name: str, value: Any) -> dict[str, Any]:
    """A tuple setting (betas) is suggested item by item, as ``<name>.0``, ``<name>.1``."""
    if isinstance(value, tuple | list):
        return {f"{name}.{i}": v for i, v in enumerate(value)}
    return {name: value}


def _flat_all(settings: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [item for key, value in settings.items() for item in _flat(key, value).items()]
