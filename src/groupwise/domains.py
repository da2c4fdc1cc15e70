"""Search domains: the plain records a registry or search-space file uses to say what may be drawn.

Standard library only; the sampling stage turns them into ``trial.suggest_*`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Categorical", "Domain", "FloatRange", "IntRange", "TupleOf"]


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"FloatRange: low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"FloatRange: a log range needs low > 0; got {self.low}")

    def contains(self, value: Any) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"IntRange: low {self.low} is above high {self.high}")

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high


@dataclass(frozen=True)
class Categorical:
    choices: tuple[Any, ...]

    def contains(self, value: Any) -> bool:
        return value in self.choices


@dataclass(frozen=True)
class TupleOf:
    """A tuple hyperparameter drawn element by element, e.g. Adam's ``betas``."""

    items: tuple[FloatRange | IntRange | Categorical, ...]

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, tuple | list)
            and len(value) == len(self.items)
            and all(d.contains(v) for d, v in zip(self.items, value, strict=True))
        )


Domain = FloatRange | IntRange | Categorical | TupleOf
