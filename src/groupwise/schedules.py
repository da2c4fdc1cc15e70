"""Learning-rate schedules: the shape every group's lr follows from its own peak, as a
multiplier of the step. Part of the config record (plain data, standard library only); the
torch scheduler that applies it is built by :func:`groupwise.build`.

    schedule: {warmup: 0.05, decay: cosine, final_lr_fraction: 0.1}

- ``warmup``: a fraction of the run's steps (a number below 1) or a number of steps (a whole
  number); the lr rises linearly over it to its peak, reaching it at the warmup's last step.
- ``decay``: after the warmup, ``constant`` (the peak to the end), ``cosine`` or ``linear``
  (from the peak at the first step after the warmup to ``final_lr_fraction`` of it at the
  last step), or ``wsd`` (warmup-stable-decay: the peak until the last ``decay_fraction`` of
  the steps, then linearly to ``final_lr_fraction`` at the last step).

Step ``s`` of a run of ``T`` steps with ``W`` warmup steps (``p`` runs from 0 just after the
warmup to 1 at the last step; ``f`` is ``final_lr_fraction``)::

    s < W:     (s + 1) / W
    constant:  1
    linear:    f + (1 - f) (1 - p)
    cosine:    f + (1 - f) (1 + cos(pi p)) / 2
    wsd:       1 before the decay's start D = T - round(decay_fraction T) (after the
               warmup), then f + (1 - f) (1 - q), q from 0 at D to 1 at the last step
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from groupwise.errors import ConfigError, quote

__all__ = ["DECAYS", "Schedule"]

DECAYS = ("constant", "cosine", "linear", "wsd")
_KEYS = ("warmup", "decay", "final_lr_fraction", "decay_fraction")


@dataclass(frozen=True)
class Schedule:
    """The shape of every group's lr over a run, from its own peak lr."""

    warmup: float | int = 0
    decay: str = "constant"
    final_lr_fraction: float = 0.0
    decay_fraction: float = 0.2  # wsd only

    def __post_init__(self) -> None:
        _check(self, "schedule")

    def warmup_steps(self, total: int) -> int:
        """The warmup in steps, for a run of ``total`` steps."""
        if isinstance(self.warmup, int):
            return min(self.warmup, total)
        return min(round(self.warmup * total), total)

    def multiplier(self, step: int, total: int) -> float:
        """The lr at ``step`` (0-based) of a run of ``total`` steps, as a fraction of the peak."""
        warm = self.warmup_steps(total)
        if step < warm:
            return (step + 1) / warm
        f = self.final_lr_fraction
        if self.decay == "wsd":
            start = max(total - round(self.decay_fraction * total), warm)
            if step < start:
                return 1.0
            return f + (1 - f) * (1 - _progress(step, start, total))
        p = _progress(step, warm, total)
        if self.decay == "linear":
            return f + (1 - f) * (1 - p)
        if self.decay == "cosine":
            return f + (1 - f) * (1 + math.cos(math.pi * p)) / 2
        return 1.0

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"warmup": self.warmup, "decay": self.decay}
        if self.decay != "constant":
            data["final_lr_fraction"] = self.final_lr_fraction
        if self.decay == "wsd":
            data["decay_fraction"] = self.decay_fraction
        return data

    @classmethod
    def from_data(cls, data: Any, where: str = "schedule") -> Schedule:
        if isinstance(data, Schedule):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where}: must be a mapping like {{warmup: 0.05, decay: cosine, "
                f"final_lr_fraction: 0.1}}; got {quote(data)}"
            )
        unknown = sorted(set(map(str, data)) - set(_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {unknown[0]!r}; a schedule takes {', '.join(_KEYS)}"
            )
        if "decay_fraction" in data and data.get("decay") != "wsd":
            raise ConfigError(
                f"{where}.decay_fraction: applies to decay: wsd only; got decay "
                f"{quote(data.get('decay', 'constant'))}"
            )
        try:
            return cls(**{str(k): v for k, v in data.items()})
        except ConfigError as e:
            raise ConfigError(str(e).replace("schedule", where, 1)) from None


def _progress(step: int, start: int, total: int) -> float:
    """0 at ``start``, 1 at the last step (``total - 1``); a phase of one step stays at its
    start (a one-step run trains at its peak)."""
    span = total - 1 - start
    return 0.0 if span <= 0 else min(max((step - start) / span, 0.0), 1.0)


def _check(schedule: Schedule, where: str) -> None:
    warmup = schedule.warmup
    if isinstance(warmup, bool) or not isinstance(warmup, int | float):
        raise ConfigError(f"{where}.warmup: must be a number; got {quote(warmup)}")
    if isinstance(warmup, float) and not 0.0 <= warmup < 1.0:
        raise ConfigError(
            f"{where}.warmup: a fraction of the run must be in [0, 1); got {warmup!r}; for a "
            "number of steps, give a whole number"
        )
    if isinstance(warmup, int) and warmup < 0:
        raise ConfigError(f"{where}.warmup: steps must be >= 0; got {warmup!r}")
    if schedule.decay not in DECAYS:
        raise ConfigError(
            f"{where}.decay: must be one of [{', '.join(DECAYS)}]; got {quote(schedule.decay)}"
        )
    for key, low, high, closed in (
        ("final_lr_fraction", 0.0, 1.0, True),
        ("decay_fraction", 0.0, 1.0, False),
    ):
        value = getattr(schedule, key)
        inside = isinstance(value, int | float) and not isinstance(value, bool)
        inside = inside and (low <= value if closed else low < value) and value <= high
        if not inside:
            span = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g}]"
            raise ConfigError(f"{where}.{key}: must be a number in {span}; got {quote(value)}")
