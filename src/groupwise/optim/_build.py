"""model + config -> MultiOptimizer (``build_optimizer``), or the optimizer and the lr
scheduler of the config's schedule (``build``), with every check a user's config needs."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from groupwise.config import TrialConfig
from groupwise.errors import ConfigError, LabelMismatchError
from groupwise.optim._checks import check_group
from groupwise.optim._multi import MultiOptimizer
from groupwise.optim._registry import get_optimizer
from groupwise.partition import partition
from groupwise.schedules import Schedule

__all__ = ["as_config", "build", "build_optimizer"]

log = logging.getLogger("groupwise")

ConfigLike = TrialConfig | Mapping[str, Any] | str | os.PathLike[str]


def build(
    model: nn.Module, config: ConfigLike, *, total_steps: int
) -> tuple[MultiOptimizer, LambdaLR]:
    """The optimizer and the lr scheduler a config describes, for a run of ``total_steps``
    optimizer steps: call ``scheduler.step()`` after each ``optimizer.step()``. Every group's
    lr follows the config's schedule (``groupwise.schedules``) from its own peak (its ``lr``);
    a config without one keeps every lr constant. The config's ``grad_clip_norm``, if any, is
    yours to apply before each step (``torch.nn.utils.clip_grad_norm_``).

    Raises ConfigError for a run of no steps, or a decay for a schedule-free optimizer (it
    takes a warmup only: it averages its own iterates instead of decaying)."""
    cfg = as_config(config)
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"total_steps: a run needs at least one step; got {total_steps!r}")
    schedule = cfg.schedule or Schedule()
    free = sorted({g.optimizer for g in cfg.groups.values() if get_optimizer(g.optimizer).modes})
    if free and schedule.decay != "constant":
        raise ConfigError(
            f"schedule.decay: {free[0]} is schedule-free: it takes a warmup only (decay: "
            f"constant); got decay {schedule.decay!r}"
        )
    optimizer = _build(model, cfg)
    last = total_steps - 1
    scheduler = LambdaLR(optimizer, lambda step: schedule.multiplier(min(step, last), total_steps))
    return optimizer, scheduler


def build_optimizer(model: nn.Module, config: ConfigLike) -> MultiOptimizer:
    """Build the optimizer a config describes for ``model``, for a config without a schedule
    (one with a schedule needs :func:`build`, which gives the scheduler too).

    Args:
        model: the module to optimize.
        config: a :class:`TrialConfig`, a dict in the export format
            (``{"scheme": ..., "groups": {label: {"optimizer": ..., ...}}}``), or the path
            of an exported ``.yaml``/``.yml``/``.json`` file.

    Returns:
        A :class:`MultiOptimizer` with one param group per label.

    Raises:
        ConfigError: the config is malformed, names an unknown scheme, optimizer or
            hyperparameter, has a negative lr, or torch rejects a setting.
        LabelMismatchError: the config's labels differ from those the scheme produces here.
        ConstraintError: an optimizer cannot take one of its group's tensors.
        PartitionError: the scheme's options do not fit this model.
    """
    cfg = as_config(config)
    if cfg.schedule is not None:
        raise ConfigError(
            f"this config has a schedule ({cfg.schedule.to_data()}): build it with "
            "`optimizer, scheduler = groupwise.build(model, config, total_steps=N)`, whose "
            "scheduler applies it; build_optimizer alone would train at every peak lr"
        )
    return _build(model, cfg)


def _build(model: nn.Module, cfg: TrialConfig) -> MultiOptimizer:
    groups = partition(model, cfg.scheme)
    _check_labels(cfg, groups, type(model).__name__)
    named = dict(model.named_parameters())
    plans = []
    for label, names in groups.items():
        group = cfg.groups[label]
        info = get_optimizer(group.optimizer, where=f"groups.{label}.optimizer")
        plans.append(
            check_group(label, info, names, [named[n] for n in names], group.hyperparameters)
        )
    all_names: dict[Tensor, str] = {
        p: n for n, p in reversed(list(model.named_parameters(remove_duplicate=False)))
    }
    optimizer = MultiOptimizer(plans, names=all_names, config=cfg)
    if log.isEnabledFor(logging.INFO):  # every trial builds one: format the table only if shown
        log.info("optimizer groups for %s:\n%s", type(model).__name__, optimizer.summary())
    return optimizer


def as_config(config: ConfigLike) -> TrialConfig:
    if isinstance(config, TrialConfig):
        return config
    if isinstance(config, str | os.PathLike):
        return TrialConfig.load(config)
    if isinstance(config, Mapping):
        return TrialConfig.from_dict(config)
    raise ConfigError(
        "config must be a TrialConfig, a dict with 'scheme' and 'groups', or a path to an "
        f"exported .yaml/.json file; got {type(config).__name__}"
    )


def _check_labels(cfg: TrialConfig, groups: Mapping[str, Sequence[str]], model_name: str) -> None:
    produced, given = list(groups), list(cfg.groups)
    if set(produced) == set(given):
        return
    extra = [label for label in given if label not in groups]
    missing = [label for label in produced if label not in cfg.groups]
    raise LabelMismatchError(
        f"config groups {given} do not match the labels scheme {cfg.scheme.name!r} produces "
        f"for {model_name} {produced}: in the config but not produced {extra}, produced but "
        f"missing from the config {missing}; give exactly one group per produced label "
        "(empty labels are left out)"
    )
