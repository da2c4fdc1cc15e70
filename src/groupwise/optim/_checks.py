"""Checks one group's settings and tensors against its optimizer's registry record.

Every group goes through here, whether it comes from a config or from add_param_group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from groupwise.errors import ConfigError, ConstraintError, UnknownNameError
from groupwise.optim._registry import OptimizerInfo

__all__ = ["GroupPlan", "check_group"]


@dataclass(frozen=True)
class GroupPlan:
    """A validated group, ready to hand to torch: label, optimizer kind, named tensors, settings."""

    label: str
    info: OptimizerInfo
    names: tuple[str, ...]
    params: tuple[Tensor, ...]
    hyperparameters: Mapping[str, Any]


def check_group(
    label: str,
    info: OptimizerInfo,
    names: Sequence[str],
    params: Sequence[Tensor],
    hyperparameters: Mapping[str, Any],
) -> GroupPlan:
    """Check one group's settings and tensors against its optimizer's registry record."""
    where = f"groups.{label}"
    for key, value in hyperparameters.items():
        if key not in info.accepts:
            raise UnknownNameError(
                f"hyperparameter for optimizer {info.name!r}", key, info.accepts, where
            )
        if key == "lr":
            _check_lr(where, value)
    _check_with_torch(where, info, hyperparameters)
    violations = info.violations(zip(names, params, strict=True))
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        raise ConstraintError(f"{where}: optimizer {info.name!r} cannot take {violations[0]}{more}")
    return GroupPlan(label, info, tuple(names), tuple(params), dict(hyperparameters))


def _check_with_torch(where: str, info: OptimizerInfo, hyperparameters: Mapping[str, Any]) -> None:
    """torch validates settings only when they are constructor defaults, never per group, so
    try them as defaults on a throwaway 2-D tensor (which every optimizer kind accepts)."""
    probe = torch.zeros(2, 2, requires_grad=True)
    try:
        info.make([probe], **hyperparameters)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ConfigError(
            f"{where}: {info.cls.__name__} ({info.name}) rejects these settings "
            f"{dict(hyperparameters)}: {e}"
        ) from e


def _check_lr(where: str, value: Any) -> None:
    if isinstance(value, Tensor):
        return  # torch validates tensor learning rates itself
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}.lr: learning rate must be a number; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}.lr: learning rate must be a finite number >= 0; got {value!r}")
