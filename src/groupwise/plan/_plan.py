"""Planning: a validated study file -> a :class:`Plan`, everything checked before anything runs.

The plan resolves the task and checks its metric, partitions the model every way the space
allows (the partition facts sampling needs), resolves the sampler and pruner, and computes the
study's fingerprint. ``groupwise validate`` stops here; ``launch`` hands the plan to execution.
Nothing here imports Ray or touches a database.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from groupwise.config import TrialConfig
from groupwise.errors import GroupwiseError, SpecError, TaskError, UnknownNameError
from groupwise.optim import get_optimizer
from groupwise.plan._components import Component, component
from groupwise.recipes import RECIPES, RecipeSkippedError, adapt
from groupwise.sampling import BASE_LR, PartitionFacts, base_kinds, partition_facts
from groupwise.studyfiles import Choices, StudySpec
from groupwise.tasks import raised_at, resolve_function, resolve_task
from groupwise.training import check_step, probe_model
from groupwise.training import dry_run as run_to_report
from groupwise.transfer import RULES, family_of, plan_transfer, target_task, task_model

__all__ = ["Plan", "Seed", "dry_run", "fingerprint", "identity", "make_plan", "proxy_task"]


@dataclass(frozen=True)
class Seed:
    """A recipe adapted to this study: the sampler parameters that draw it. ``follows``: the
    parameters it takes from the best trial so far when it joins the queue, which it does
    only after the seeds that follow nothing have finished (empty: it is queued at once)."""

    recipe: str
    params: Mapping[str, Any]
    follows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A study ready to run: the spec, the partition facts, sampler and pruner, identity,
    and the recipes it tries first."""

    spec: StudySpec
    facts: PartitionFacts
    sampler: Component
    pruner: Component
    fingerprint: str  # what makes two launches the same study
    seeds: tuple[Seed, ...] = ()
    skipped: tuple[str, ...] = ()  # recipes that did not fit, and why

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user should hear before anything runs (each names the file and key):
        an option that does nothing on this model, a range cut to what the model allows, a
        recipe that does not fit, the space's confirmation left out for a small budget."""
        confirm = self.spec.confirm_note
        notes = (confirm, _ignored_training(self.spec))
        return (*self.facts.notes, *self.skipped, *(note for note in notes if note))


def make_plan(spec: StudySpec) -> Plan:
    """Resolve the task, partition its model every way the space allows, resolve the sampler
    and pruner. Raises SpecError naming the study file for anything that would fail later."""
    where = str(spec.source or spec.name)
    facts = _facts(spec, where)
    sampler = component(
        "sampler", spec.sampler.name, spec.sampler.options, f"{where}: sampler", seed=spec.seed
    )
    implied = {"max_resource": spec.training.epochs} if spec.pruner.name == "hyperband" else {}
    pruner = component(
        "pruner", spec.pruner.name, spec.pruner.options, f"{where}: pruner", implied=implied
    )
    seeds, skipped = _seeds(spec, facts, where)
    return Plan(spec, facts, sampler, pruner, fingerprint(spec), seeds, skipped)


def _ignored_training(spec: StudySpec) -> str:
    """A function task trains as its code says: the study file's ``training:`` section is the
    built-in loop's, and only its ``epochs`` is read (the hyperband pruner's resource)."""
    if not spec.task.function or "training" not in spec.model_fields_set:
        return ""
    return (
        f"{spec.source or spec.name}: training: a function task trains as its function says; "
        "this section is the built-in loop's, and only its epochs is read (hyperband's "
        "max_resource): set precision, clipping and steps in your code"
    )


def _seeds(
    spec: StudySpec, facts: PartitionFacts, where: str
) -> tuple[tuple[Seed, ...], tuple[str, ...]]:
    """The warm-start recipes (the study file's, else the space file's) adapted to the model."""
    names = spec.warm_start.recipes
    key = f"{where}: warm_start.recipes"
    if names is None:
        names, key = spec.space.warm_start, f"{spec.search_space}: warm_start"
    adapted: dict[str, tuple[dict[str, Any], ...]] = {}
    skipped: list[str] = []
    for name in names:
        if name not in RECIPES:
            raise SpecError(str(UnknownNameError("recipe", name, RECIPES.names(), key)))
        try:
            adapted[name] = adapt(name, spec.space, facts)
        except RecipeSkippedError as e:
            skipped.append(f"{key}: {e}; skipped")
    # in a relative space, the structural recipes follow the best base lr of a leading one
    # (an lr sweep) that runs before them (groupwise.recipes)
    leading = any(RECIPES.get(name).leads for name in adapted)
    following = (BASE_LR,) if leading and spec.space.sharing.relative is not None else ()
    seeds = [
        Seed(name, params, following if RECIPES.get(name).follows else ())
        for name, configs in adapted.items()
        for params in configs
    ]
    return tuple(seeds), tuple(skipped)


def _facts(spec: StudySpec, where: str) -> PartitionFacts:
    model = _function_model(spec, where) if spec.task.function else _task_model(spec, where)
    _check_transfer(spec, model, where)
    facts = partition_facts(model, spec.space, source=str(spec.search_space))
    _check_relative(spec, facts)
    _check_schedule(spec)
    return facts


def _function_model(spec: StudySpec, where: str) -> torch.nn.Module:
    """A function task's model: its function run up to ``trial.build(model)``, no further.
    Its metrics are known only once it reports (``validate --dry-run``)."""
    ref = spec.task.name
    try:
        function = resolve_function(ref)
        return probe_model(function, spec.task.options, ref, spec.training.grad_clip_norm)
    except TaskError as e:
        raise SpecError(f"{where}: {e}") from e


# the config a transfer target is checked with: any config's tensors are the model's
_STAND_IN = TrialConfig.from_dict({"scheme": "single", "groups": {"all": {"optimizer": "adamw"}}})


def _check_transfer(spec: StudySpec, model: torch.nn.Module, where: str) -> None:
    """A study's ``transfer:`` target checked before anything runs: its rule, a width rule
    for every optimizer the space offers, and a target model of the same architecture (a
    stand-in config carried to it)."""
    target = spec.transfer
    if target is None:
        return
    try:
        RULES.get(target.rule)
        if target.rule != "none":
            for optimizer in spec.space.optimizers:
                family_of(optimizer, target.rule, f"search space optimizers.{optimizer}")
        other = target_task(proxy_task(spec), target.task, target.options)
        plan_transfer(_STAND_IN, model, task_model(other), target.rule)
    except GroupwiseError as e:
        raise SpecError(f"{where}: transfer: {e}") from e


def proxy_task(spec: StudySpec) -> dict[str, Any]:
    """The study's task as ``groupwise.transfer`` takes it (name, options, train, data seed)."""
    return spec.task.model_dump(mode="json")


def dry_run(spec: StudySpec) -> dict[str, float]:
    """A function task run up to its first report (``validate --dry-run``): the metrics it
    reports, which must hold the study's ``objective.metric``. Raises SpecError naming the
    study file. A built-in task's check step is its dry run: it reports every metric."""
    where, ref = str(spec.source or spec.name), spec.task.name
    if not spec.task.function:
        return {}
    try:
        function = resolve_function(ref)
        report = run_to_report(function, spec.task.options, ref, spec.training.grad_clip_norm)
    except TaskError as e:
        raise SpecError(f"{where}: {e}") from e
    metrics = dict(report.metrics)
    if math.isfinite(report.train_loss):
        metrics["train_loss"] = report.train_loss
    if spec.objective.metric not in report.metrics:
        raise SpecError(
            f"{where}: objective.metric: task.train {ref!r} reported "
            f"[{', '.join(report.metrics)}] at step {report.epoch}; got {spec.objective.metric!r}"
        )
    return metrics


def _task_model(spec: StudySpec, where: str) -> torch.nn.Module:
    """A built-in loop's task: its metric checked, its model built, one training step."""
    try:
        task = resolve_task(spec.task.name, spec.task.options, seed=spec.task.data_seed)
    except GroupwiseError as e:
        raise SpecError(f"{where}: task: {e}") from e
    if spec.objective.metric not in task.metric_names:
        raise SpecError(
            f"{where}: objective.metric: task {spec.task.name!r} reports "
            f"[{', '.join(task.metric_names)}]; got {spec.objective.metric!r}"
        )
    torch.manual_seed(spec.seed)
    try:
        model = task.make_model()
    except Exception as e:
        raise SpecError(f"{where}: task: building the model failed: {raised_at(e)}") from e
    try:
        check_step(task, model, spec.training.batch_size)
    except TaskError as e:
        raise SpecError(f"{where}: task {spec.task.name!r}: {e}") from e
    return model


def _check_schedule(spec: StudySpec) -> None:
    """A schedule-free optimizer (it averages its iterates instead of decaying) takes a warmup
    only: a space offering one may not decay the lr."""
    schedule = spec.space.schedule
    if schedule is None:
        return
    decays = schedule.decay.choices if isinstance(schedule.decay, Choices) else (schedule.decay,)
    free = [k for k in spec.space.optimizers if get_optimizer(k).modes]
    decaying = [d for d in decays if d != "constant"]
    if free and decaying:
        raise SpecError(
            f"{spec.search_space}: schedule.decay: {free[0]} is schedule-free: it takes a warmup "
            f"only (decay: constant); the space may decay by {decaying[0]!r}. Drop {free[0]} "
            "or the decay"
        )


def _check_relative(spec: StudySpec, facts: PartitionFacts) -> None:
    """A relative space needs a base kind that every group can take, with a searched lr."""
    if spec.space.sharing.relative is None:
        return
    source = f"{spec.search_space}: sharing.relative"
    kinds = base_kinds(spec.space, facts)
    if not kinds:
        raise SpecError(
            f"{source}: no base optimizer fits every group (torch's Muon takes 2-D tensors "
            "only); make an Adam-family optimizer the base and Muon an override"
        )
    fixed = [k for k in kinds if "lr" not in spec.space.domains(k)]
    if fixed:
        raise SpecError(
            f"{source}: the base optimizer {fixed[0]!r} has a fixed lr; the base lr is searched "
            "(each group scales it), so give it a range"
        )


# Keys a study file gained after studies were launched without them, with the value that
# means "as before": left out of the identity at that value, so an old study's fingerprint
# holds and a relaunch is not refused for a key it never set.
LATER_KEYS: tuple[tuple[str, str, Any], ...] = (
    ("space", "roles", {}),
    ("space", "schedule", None),
    ("training", "accumulate", 1),
    ("training", "precision", "fp32"),
    ("training", "grad_clip_norm", None),
    ("training", "compile", False),
    ("objective", "reduce", "last"),
    ("task", "train", None),
)


def identity(spec: StudySpec) -> dict[str, Any]:
    """What makes two launches the same study (JSON): task, space, objective, training, seed.
    Budget, workers, faults, sampler, pruner and the confirmation of the leaders may change
    between launches (a space's default ``confirm`` is left out with them).

    The task's ``data_seed`` is recorded only where it differs from the study's seed: before
    it existed the data came from the study's seed, so a study launched then (whose seed was
    its data's) keeps its fingerprint, and one whose data would now differ is told so. Keys
    added later (``LATER_KEYS``) are left out at their "as before" value."""
    task = spec.task.model_dump(mode="json")
    if task["data_seed"] == spec.seed:
        del task["data_seed"]
    record: dict[str, Any] = {
        "task": task,
        "space": spec.space.model_dump(mode="json"),
        "objective": spec.objective.model_dump(mode="json"),
        "training": spec.training.model_dump(mode="json"),
        "seed": spec.seed,
    }
    del record["space"]["confirm"]
    for part, key, before in LATER_KEYS:
        if record[part].get(key) == before:
            del record[part][key]
    return record


def fingerprint(spec: StudySpec) -> str:
    """A short hash of :func:`identity`."""
    text = json.dumps(identity(spec), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
