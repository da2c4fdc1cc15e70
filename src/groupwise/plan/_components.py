"""Samplers and pruners: registries by name, with every argument that matters pinned.

Optuna 5 changed TPE's defaults (multivariate and constant liar on), and defaults may move
again; a study's behaviour should not. So each entry states its arguments, the study file may
override any of them, and unknown ones are refused with the accepted list. A plan holds a
:class:`Component` (a name and its full arguments: plain data); the driver builds the live
Optuna object from it when the study opens.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import optuna

from groupwise.errors import SpecError, UnknownNameError
from groupwise.plan._staged import StagedSampler
from groupwise.registry import Registry, accepted_options, check_options

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Component",
    "ComponentEntry",
    "component",
    "register_pruner",
    "register_sampler",
]

Kind = Literal["sampler", "pruner"]


@dataclass(frozen=True)
class ComponentEntry:
    """A sampler or pruner class and the arguments groupwise pins for it."""

    cls: Callable[..., Any]
    pinned: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool = True  # takes ``seed``; the study's seed is passed unless the file gives one


SAMPLERS: Registry[ComponentEntry] = Registry("sampler")
PRUNERS: Registry[ComponentEntry] = Registry("pruner")
_REGISTRIES: dict[Kind, Registry[ComponentEntry]] = {"sampler": SAMPLERS, "pruner": PRUNERS}


def register_sampler(name: str, entry: ComponentEntry) -> ComponentEntry:
    return SAMPLERS.add(name, entry)


def register_pruner(name: str, entry: ComponentEntry) -> ComponentEntry:
    return PRUNERS.add(name, entry)


@dataclass(frozen=True)
class Component:
    """A sampler or pruner by registry name with every argument it is built with."""

    kind: Kind
    name: str
    arguments: Mapping[str, Any]

    def build(self) -> Any:
        """The live Optuna sampler or pruner (a fresh one each call: samplers keep state)."""
        entry = _REGISTRIES[self.kind].get(self.name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return entry.cls(**self.arguments)

    def with_seed(self, seed: int) -> Component:
        """The same component with another seed (for a seeded one; others unchanged)."""
        if "seed" not in self.arguments:
            return self
        return replace(self, arguments={**self.arguments, "seed": seed})

    def reseeded(self, *salt: object) -> Component:
        """The same component, seeded from its own seed and ``salt`` (what differs between
        launches: the trials already in the study, the driver). With no salt, unchanged:
        a study's first launch samples exactly as its seed says."""
        seed = self.arguments.get("seed")
        if not salt or seed is None:
            return self
        text = "|".join(map(str, (seed, *salt)))
        return self.with_seed(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))


def component(
    kind: Kind,
    name: str,
    options: Mapping[str, Any],
    where: str,
    *,
    seed: int | None = None,
    implied: Mapping[str, Any] | None = None,
) -> Component:
    """Resolve a study file's sampler or pruner; errors name the file and key, and what is
    accepted. ``seed`` goes to seeded entries unless ``options`` gives one; ``implied`` holds
    arguments the study implies (hyperband's max_resource is its epochs), below ``options``.
    The result is built once here, so a value the class rejects fails now, not at launch."""
    registry = _REGISTRIES[kind]
    try:
        entry = registry.get(name, f"{where}.name")
    except UnknownNameError as e:
        raise SpecError(str(e)) from None
    accepted = accepted_options(entry.cls, skip=("args", "kwargs"))
    check_options(kind, name, options, accepted, SpecError, f"{where}.options")
    arguments = {**entry.pinned, **(implied or {}), **options}
    if entry.seeded and "seed" not in options:
        arguments["seed"] = seed
    made = Component(kind, name, arguments)
    try:
        made.build()
    except (TypeError, ValueError, ImportError) as e:
        raise SpecError(f"{where}: {kind} {name!r} rejects {arguments}: {e}") from e
    return made


# group=True models conditional parameters (each scheme's labels) jointly; constant_liar keeps
# parallel workers from proposing the same point. 10 start-up trials: see per_group.yaml.
TPE = {
    "n_startup_trials": 10,
    "n_ei_candidates": 24,
    "multivariate": True,
    "group": True,
    "constant_liar": True,
}
register_sampler("tpe", ComponentEntry(optuna.samplers.TPESampler, TPE))
# TPE as above; the first base_trials finished trials tune the base alone. What a study on a
# relative space gets when its file names no sampler (StudySpec; why: per_group.yaml).
register_sampler("staged", ComponentEntry(StagedSampler, {"base_trials": 8, **TPE}))
register_sampler("random", ComponentEntry(optuna.samplers.RandomSampler))
register_sampler("gp", ComponentEntry(optuna.samplers.GPSampler, {"n_startup_trials": 10}))
register_sampler("cmaes", ComponentEntry(optuna.samplers.CmaEsSampler, {"n_startup_trials": 1}))
register_sampler(
    "qmc", ComponentEntry(optuna.samplers.QMCSampler, {"qmc_type": "sobol", "scramble": True})
)

# Defaults chosen from measurement (see BENCHMARKS.md): early-epoch scores barely predict
# final ones, so prune only after a warm-up and only against enough finished trials.
register_pruner(
    "median",
    ComponentEntry(
        optuna.pruners.MedianPruner,
        {"n_startup_trials": 5, "n_warmup_steps": 2, "interval_steps": 1},
        seeded=False,
    ),
)
register_pruner(
    "successive_halving",
    ComponentEntry(
        optuna.pruners.SuccessiveHalvingPruner,
        {"min_resource": 2, "reduction_factor": 3, "min_early_stopping_rate": 0},
        seeded=False,
    ),
)
register_pruner(
    "hyperband",
    ComponentEntry(
        optuna.pruners.HyperbandPruner, {"min_resource": 2, "reduction_factor": 3}, seeded=False
    ),
)
register_pruner("none", ComponentEntry(optuna.pruners.NopPruner, seeded=False))
