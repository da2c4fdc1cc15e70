"""Samplers and pruners by name, with every argument that matters pinned.

Optuna 5 changed TPE's defaults (multivariate and constant liar on), and defaults may move
again; a study's behaviour should not. So each entry states its arguments, the study file
may override any of them, and unknown ones are refused with the accepted list.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from groupwise.errors import SpecError, UnknownNameError


@dataclass(frozen=True)
class Entry:
    cls: Callable[..., Any]
    pinned: Mapping[str, Any]
    seeded: bool = True  # takes ``seed``; the study's seed is passed unless the file gives one


SAMPLERS: dict[str, Entry] = {
    "tpe": Entry(
        optuna.samplers.TPESampler,
        # group=True models conditional parameters (each scheme's labels) jointly; constant_liar
        # keeps parallel workers from proposing the same point.
        {
            "n_startup_trials": 10,
            "n_ei_candidates": 24,
            "multivariate": True,
            "group": True,
            "constant_liar": True,
        },
    ),
    "random": Entry(optuna.samplers.RandomSampler, {}),
    "gp": Entry(optuna.samplers.GPSampler, {"n_startup_trials": 10}),
    "cmaes": Entry(optuna.samplers.CmaEsSampler, {"n_startup_trials": 1}),
    "qmc": Entry(
        optuna.samplers.QMCSampler,
        {"qmc_type": "sobol", "scramble": True},
    ),
}

PRUNERS: dict[str, Entry] = {
    # Defaults chosen from measurement (see BENCHMARKS.md): early-epoch scores barely predict
    # final ones, so prune only after a warm-up and only against enough finished trials.
    "median": Entry(
        optuna.pruners.MedianPruner,
        {"n_startup_trials": 5, "n_warmup_steps": 2, "interval_steps": 1},
        seeded=False,
    ),
    "successive_halving": Entry(
        optuna.pruners.SuccessiveHalvingPruner,
        {"min_resource": 2, "reduction_factor": 3, "min_early_stopping_rate": 0},
        seeded=False,
    ),
    "hyperband": Entry(
        optuna.pruners.HyperbandPruner, {"min_resource": 2, "reduction_factor": 3}, seeded=False
    ),
    "none": Entry(optuna.pruners.NopPruner, {}, seeded=False),
}


def build(
    kind: str,
    registry: Mapping[str, Entry],
    name: str,
    options: Mapping[str, Any],
    where: str,
    *,
    seed: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Construct a sampler or pruner; errors name the file and key, and what is accepted.

    ``seed`` goes to seeded entries unless ``options`` gives one; ``extra`` holds arguments
    the study implies (hyperband's max_resource is its epochs), below ``options``.
    """
    if name not in registry:
        raise SpecError(str(UnknownNameError(kind, name, registry, f"{where}.name")))
    entry = registry[name]
    accepted = [
        p for p in inspect.signature(entry.cls).parameters if p not in ("self", "args", "kwargs")
    ]
    for key in options:
        if key not in accepted:
            raise SpecError(
                f"{where}.options: {kind} {name!r} has no argument {key!r}; "
                f"it accepts [{', '.join(accepted)}]"
            )
    arguments = {**entry.pinned, **(extra or {}), **options}
    if entry.seeded and "seed" not in options:
        arguments["seed"] = seed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return entry.cls(**arguments)
    except (TypeError, ValueError, ImportError) as e:
        raise SpecError(f"{where}: {kind} {name!r} rejects {arguments}: {e}") from e
