"""The schedule part of a trial: a space's ``schedule:`` keys, each fixed or drawn, under the
names ``schedule.warmup``, ``schedule.decay``, ``schedule.final_lr_fraction`` (not for a
constant lr), ``schedule.decay_fraction`` (wsd only) and ``grad_clip_norm``."""

from __future__ import annotations

from typing import Any

from groupwise.sampling._suggest import Suggester, suggest
from groupwise.schedules import Schedule
from groupwise.studyfiles import SearchSpace, to_domain

__all__ = ["sample_schedule"]


def sample_schedule(trial: Suggester, space: SearchSpace) -> tuple[Schedule | None, float | None]:
    """(the schedule, the clip norm) a trial trains with; (None, None) without a schedule."""
    given = space.schedule
    if given is None:
        return None, None
    decay = _draw(trial, "schedule.decay", given.decay)
    values: dict[str, Any] = {"warmup": _draw(trial, "schedule.warmup", given.warmup)}
    values["decay"] = decay
    if decay != "constant":
        values["final_lr_fraction"] = _draw(
            trial, "schedule.final_lr_fraction", given.final_lr_fraction
        )
    if decay == "wsd":
        values["decay_fraction"] = _draw(trial, "schedule.decay_fraction", given.decay_fraction)
    clip = given.grad_clip_norm
    return Schedule(**values), None if clip is None else float(_draw(trial, "grad_clip_norm", clip))


def _draw(trial: Suggester, name: str, value: Any) -> Any:
    domain = to_domain(value)
    return value if domain is None else suggest(trial, name, domain)
