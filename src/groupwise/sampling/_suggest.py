"""The one place that calls ``suggest_*``: a Suggester (an ``optuna.Trial``) + a domain ->
a value, under a stable name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from groupwise.domains import Categorical, Domain, FloatRange, IntRange, TupleOf

__all__ = ["Suggester", "suggest", "widest"]


class Suggester(Protocol):
    """What sampling needs of an ``optuna.Trial``."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def suggest(trial: Suggester, name: str, domain: Domain) -> Any:
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
        return tuple(suggest(trial, f"{name}.{i}", d) for i, d in enumerate(domain.items))
    raise TypeError(f"unknown domain {domain!r}")


def widest(domains: list[Domain]) -> Domain:
    floats = [d for d in domains if isinstance(d, FloatRange)]
    if len(floats) != len(domains):
        return domains[0]
    return FloatRange(
        min(d.low for d in floats), max(d.high for d in floats), all(d.log for d in floats)
    )
