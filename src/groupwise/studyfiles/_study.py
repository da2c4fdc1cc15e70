"""The study file: what to train, what to search, how long, and with what resources.

name: quickstart
task: digits_mlp                      # a built-in name, or "package.module:function"
                                      # or {train: "module:function"}: your own training
search_space: ../search_spaces/seeds_mixed.yaml   # relative to this file
objective: {metric: val_loss, direction: minimize, reduce: last}  # or best, {mean_last: k}
budget: {trials: 24, time_s: 100}     # trials: confirmations included
confirm: {top: 3, seeds: 2}           # default: the space's (off where it names none)
training: {epochs: 6, batch_size: 64}
sampler: {name: tpe, options: {n_startup_trials: 8}}
pruner: {name: median, options: {n_startup_trials: 6, n_warmup_steps: 2}}
workers: {count: 2, cpus_per_trial: 1, gpus_per_trial: 0}
faults: {max_retries: 2, trial_timeout_s: 600, heartbeat_s: 10, stale_after_s: 60}
seed: 0                               # the search's; the data's is task.data_seed (default 0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from groupwise.studyfiles._frozen import Frozen
from groupwise.studyfiles._objective import Confirm, Objective
from groupwise.studyfiles._space import SearchSpace

__all__ = [
    "Budget",
    "Confirm",
    "Faults",
    "Named",
    "Objective",
    "StudySpec",
    "TaskRef",
    "Training",
    "TransferTarget",
    "WarmStart",
    "Workers",
]


class Named(Frozen):
    """A registry name with keyword options: ``{name: tpe, options: {...}}`` or just ``tpe``."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class TaskRef(Named):
    """A built-in task by name, or a user's ``package.module:function`` (or
    ``path/to/file.py:function``), with its options.

    ``data_seed``: the seed of the task's data (its train/validation split, and any data it
    generates), passed to the task as ``seed``. It is fixed (0) unless the file says
    otherwise, so that the study's ``seed`` (the sampler's draws, each trial's initialisation
    and batch order) can change without changing the data: two seeds of a search then search
    the same problem. A different ``data_seed`` is a different problem (another split).
    """

    data_seed: int = 0
    # a function task: the user's training function, train(trial) -> None | float, which
    # builds its own model and data (``{train: "module:function"}``; its name is the same)
    train: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _function(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("train") is None:
            return data
        if data.get("name") not in (None, data["train"]):
            raise ValueError(
                "give name (a task: a built-in or 'module:function' returning a Task) or train "
                "(your own training function, 'module:function'), not both"
            )
        return {**data, "name": data["train"]}

    @property
    def function(self) -> bool:
        """Whether the task is the user's own training function."""
        return self.train is not None


class Budget(Frozen):
    trials: int | None = Field(default=None, ge=1)
    time_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bounded(self) -> Budget:
        if self.trials is None and self.time_s is None:
            raise ValueError("give trials, time_s or both; a study needs an end")
        return self


class Training(Frozen):
    """How every trial trains, as users train (``groupwise.training``).

    - ``epochs``; ``steps_per_epoch``: optimizer steps per epoch (none: one pass over the
      data); ``batch_size``: of one micro-batch; ``accumulate``: micro-batches per step (a
      step on ``accumulate x batch_size`` samples). The run's total steps are known up front,
      so the config's lr schedule is exact.
    - ``precision``: fp32, or bf16 / fp16 autocast (fp16 with a GradScaler; bf16 runs on CPUs).
    - ``grad_clip_norm``: clip every trial's gradients to this norm (a space that searches
      it, under ``schedule:``, gives it per trial instead: not both).
    - ``compile``: ``torch.compile`` the model once per trial (the compile time is recorded
      apart from training time).
    """

    epochs: int = Field(default=5, ge=1)
    steps_per_epoch: int | None = Field(default=None, ge=1)  # None: one pass over the data
    batch_size: int = Field(default=64, ge=1)
    accumulate: int = Field(default=1, ge=1)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_clip_norm: float | None = Field(default=None, gt=0)
    compile: bool = False


class Workers(Frozen):
    """How many workers train at once, with what resources.

    ``reproducible``: start trials in rounds of ``count`` and start the next round only when
    the whole round has finished, so that what the sampler and the pruner have seen at each
    step never depends on which worker happened to finish first: the same study file, seed
    and machine give the same trials and the same best. The price is idle workers while a
    round's slowest trial finishes (pruned trials end early). Off by default.

    ``batch``: candidates each worker trains at once, K trials of one model in one batched
    step (``groupwise.training.BatchedTrainer``): trials whose configs differ only in numbers
    (lrs, weight decays, momenta, schedules, clip norms) share the step; the others, and
    models or optimizers that cannot batch, train one at a time (the reason is logged once).
    Each candidate is its own trial, recorded as if it had trained alone. 1: one at a time.
    A function task is never batched. ``memory_per_trial_mb`` stays per trial (a worker
    holds ``batch`` of them); the GPU default, a worker's share, is split between them.
    """

    count: int = Field(default=2, ge=1)
    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0)  # 0.25: four trials share one GPU
    # The memory a trial may use; default on GPUs: its share (gpus_per_trial) of the GPU's.
    memory_per_trial_mb: float | None = Field(default=None, gt=0)
    reproducible: bool = False
    batch: int = Field(default=1, ge=1, le=256)


class Faults(Frozen):
    """What the driver does when the machinery fails under a trial.

    A trial lost to the infrastructure (its worker died, its driver died, the driver was
    interrupted) is failed with its reason and its parameters are enqueued again; the failed
    attempt then no longer counts toward the budget. Only the deaths of its own worker count
    against ``max_retries`` (the run may be what kills it); an interrupted or dead driver is
    not the trial's fault, and its trials are retried however often that happens.
    A trial's own error, a divergence or a timeout is not retried: it would happen again.
    """

    max_retries: int = Field(default=2, ge=0)
    trial_timeout_s: float | None = Field(default=None, gt=0)  # None: no limit
    heartbeat_s: int = Field(default=10, ge=1)  # how often the driver marks its trials alive
    stale_after_s: int = Field(default=60, ge=1)  # no heartbeat this long: failed as stale
    # How long a launch waits out a database outage, in all, before it stops (its running
    # trials are then picked up as stale and retried by the next launch).
    database_patience_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _grace(self) -> Faults:
        if self.stale_after_s <= self.heartbeat_s:
            raise ValueError(
                f"stale_after_s ({self.stale_after_s}) must be longer than heartbeat_s "
                f"({self.heartbeat_s}), or live trials would be failed as stale"
            )
        return self


class WarmStart(Frozen):
    """What a study tries before its sampler proposes anything: ``recipes`` (named configs
    adapted to the model; they replace the space file's list) and earlier ``studies`` of the
    same task, space and objective in the same database, whose finished trials the sampler
    sees as its own (they do not count toward the budget)."""

    recipes: tuple[str, ...] | None = None  # None: the space file's
    studies: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"recipes": data} if isinstance(data, list | tuple) else data


class TransferTarget(Frozen):
    """Where a study's best config is meant to go (tune small, transfer big): ``task`` (the
    study's own unless named) at ``options`` (``{width: 512}``: a wider model), its lrs
    carried by ``rule`` (``sp-per-layer``, ``mup`` or ``none``). The search is unchanged; at
    its end the best config is carried there and recorded (``report``, the dashboard's
    study attributes, ``groupwise transfer-check``)."""

    task: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    rule: str = "sp-per-layer"


class StudySpec(Frozen):
    """A validated, frozen study file. ``space`` is the loaded search-space file."""

    # Letters, digits and _.- only, and short enough for every storage backend's columns.
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    task: TaskRef
    search_space: Path
    space: SearchSpace
    objective: Objective = Objective()
    budget: Budget
    training: Training = Training()
    sampler: Named = Named(name="tpe")  # where the file names none: _default_sampler
    pruner: Named = Named(name="median")
    workers: Workers = Workers()
    faults: Faults = Faults()
    warm_start: WarmStart = WarmStart()
    confirm: Confirm | None = None  # None: the space's default (confirming)
    transfer: TransferTarget | None = None  # where the best config goes; None: nowhere
    seed: int = 0  # the search's: sampler, initialisation, batch order (not the data's)
    source: Path | None = None  # the file it was read from

    @model_validator(mode="after")
    def _one_clip(self) -> StudySpec:
        clip = self.space.schedule.grad_clip_norm if self.space.schedule else None
        if clip is not None and self.training.grad_clip_norm is not None:
            raise ValueError(
                "grad_clip_norm is given twice: training.grad_clip_norm and the search space's "
                "schedule.grad_clip_norm; keep one (the space's to search it)"
            )
        return self

    @model_validator(mode="after")
    def _reduce_fits(self) -> StudySpec:
        if self.objective.window > self.training.epochs:
            raise ValueError(
                f"objective.reduce: mean_last {self.objective.window} averages more epochs "
                f"than training.epochs ({self.training.epochs}) trains; make k at most "
                f"{self.training.epochs}"
            )
        return self

    @model_validator(mode="after")
    def _confirm_fits(self) -> StudySpec:
        confirm, trials = self.confirm, self.budget.trials
        if confirm is not None and confirm.on and trials is not None and confirm.trials >= trials:
            raise ValueError(
                f"confirm: top {confirm.top} x seeds {confirm.seeds} = {confirm.trials} trials "
                f"of budget.trials ({trials}) leaves none for the search; raise budget.trials "
                "(confirmations count toward it) or confirm fewer"
            )
        return self

    @property
    def confirming(self) -> Confirm | None:
        """The confirmation this study runs (None: none). The study file's ``confirm``, else
        the space's default where the trial budget holds it with at least two thirds of the
        trials left to the search (:attr:`confirm_note` says when it does not); a budget of
        time alone takes a default of neither (it would run past the time)."""
        if self.confirm is not None:
            return self.confirm if self.confirm.on else None
        default, trials = self.space.confirm, self.budget.trials
        if default is None or not default.on or trials is None:
            return None
        return default if 3 * default.trials <= trials else None

    @property
    def confirm_note(self) -> str | None:
        """Why the space's default confirmation is left out, if it is."""
        default = self.space.confirm
        if self.confirm is not None or default is None or not default.on:
            return None
        if self.budget.trials is None:
            return (
                f"{self.search_space}: confirm: the space's default ({default.top} x "
                f"{default.seeds} confirmations) is left out: a budget of time alone has no "
                "trials to hold it; give the study a confirm: to run it after the time"
            )
        if self.confirming is None:
            return (
                f"{self.search_space}: confirm: the space's default ({default.top} x "
                f"{default.seeds} = {default.trials} trials) is left out: it needs "
                f"budget.trials of {3 * default.trials} or more (it has {self.budget.trials}); "
                "give the study its own confirm: to run it anyway"
            )
        return None

    @model_validator(mode="before")
    @classmethod
    def _default_sampler(cls, data: Any) -> Any:
        """A study file that names no sampler gets the staged search (``staged``: the shared
        base alone first, then the per-group deviations around it) on a space with the relative
        parametrization, the one kind whose base it can tune first, and TPE on any other.
        Why: BENCHMARKS.md, "The staged search becomes the default"."""
        if isinstance(data, dict) and data.get("sampler") is None:
            space = data.get("space")  # parsed by read_study / read_study_document
            relative = isinstance(space, SearchSpace) and space.sharing.relative is not None
            return {**data, "sampler": "staged" if relative else "tpe"}
        return data

    def with_overrides(self, **changes: Any) -> StudySpec:
        """A copy with CLI overrides applied, e.g. ``trials=10`` or ``workers=4``."""
        update: dict[str, Any] = {}
        if changes.get("trials") is not None:
            update["budget"] = self.budget.model_copy(update={"trials": changes["trials"]})
        if changes.get("workers") is not None:
            update["workers"] = self.workers.model_copy(update={"count": changes["workers"]})
        return self.model_copy(update=update)
