"""A function task's trial: the user's ``train(trial)`` run a report at a time.

The function runs in a thread of its own. Each ``trial.report(step, **metrics)`` hands the
caller (a worker) an :class:`EpochReport` and waits: :meth:`FunctionRun.next` lets it go on to
its next report (or its return), :meth:`FunctionRun.stop` makes the waiting ``report`` raise
:class:`~groupwise.errors.TrialPruned` and waits for the function to unwind. So the driver
decides between two reports exactly as between two epochs of the built-in loop (record, prune,
time out), and a function task needs no other protocol.

Planning a study needs the model before any trial runs (the partition facts the sampler
draws from): :func:`probe_model` runs the function only until it calls ``trial.build(model)``.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from groupwise.config import GroupConfig, SchemeChoice, TrialConfig
from groupwise.errors import TaskError, TrialPruned
from groupwise.optim import MultiOptimizer, build
from groupwise.tasks import TrainFunction, raised_at
from groupwise.training._loop import EpochReport
from groupwise.training._memory import PeakMemory

__all__ = ["FunctionRun", "Returned", "Trial", "dry_run", "probe_model", "stand_in"]

# How long a stopped function may take to unwind (its `finally:` blocks, a Lightning
# teardown) before the worker goes on without it; every later report raises again.
UNWIND_S = 60.0


@dataclass(frozen=True)
class Returned:
    """The function returned: ``value``, its own objective value (None: the study reduces the
    values it reported)."""

    value: float | None


class _Probed(BaseException):
    """Raised by ``build`` when the plan probes the function for its model."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__("groupwise probed the model")
        self.model = model


class Trial:
    """What ``train(trial)`` gets: the sampled config, and the calls that build its optimizer
    and report.

    Attributes:
        config: the sampled :class:`~groupwise.TrialConfig` (groups, schedule, clip norm).
        seed: this trial's training seed (torch's global RNG is seeded with it before
            ``train`` is called); use it for your own data order.
        device: the device the worker was given (its GPU, else the CPU).
        options: the task's options from the study file (``task: {options: ...}``).
    """

    def __init__(
        self,
        config: TrialConfig,
        *,
        seed: int,
        device: torch.device,
        options: Mapping[str, Any],
        run: FunctionRun | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.device = device
        self.options = dict(options)
        self._run = run

    def build(self, model: torch.nn.Module, *, total_steps: int) -> tuple[MultiOptimizer, LambdaLR]:
        """The optimizer and lr scheduler of this trial's config for ``model``, a run of
        ``total_steps`` optimizer steps (``groupwise.build``): call ``scheduler.step()`` after
        each ``optimizer.step()``, and clip to ``trial.config.grad_clip_norm`` if it is set.
        Move the model to ``trial.device`` first."""
        if self._run is None:
            raise _Probed(model)
        optimizer, scheduler = build(model, self.config, total_steps=total_steps)
        self._run.built(optimizer, total_steps)
        return optimizer, scheduler

    def report(self, step: int, **metrics: float) -> None:
        """Record an epoch (or any step: they must increase) with its metrics (the study's
        ``objective.metric`` among them; ``train_loss`` too, if you have it). Raises
        :class:`groupwise.TrialPruned` when the study stops the trial: let it propagate."""
        if self._run is None:
            raise TaskError("trial.report was called before trial.build(model)")
        self._run.report(step, metrics)


class FunctionRun:
    """One trial of a function task, advanced a report at a time by :meth:`next`."""

    def __init__(
        self,
        function: TrainFunction,
        config: TrialConfig,
        *,
        seed: int,
        device: torch.device,
        options: Mapping[str, Any],
        ref: str = "",
    ) -> None:
        self.function = function
        self.trial = Trial(config, seed=seed, device=device, options=options, run=self)
        self.ref = ref
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.commands: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._main, name="groupwise-trial", daemon=True)
        self.stopping = False
        self.last_step: int | None = None
        self.optimizer: MultiOptimizer | None = None  # once the function has built it
        self.total_steps: int | None = None
        self.started = time.perf_counter()
        self.peak = PeakMemory(device)

    # -- the worker's side ---------------------------------------------------------------------
    def next(self) -> EpochReport | Returned:
        """Run the function to its next report (its first, on the first call) or its return.
        The function's own exceptions are raised here, as the built-in loop's are."""
        if self.thread.ident is None:
            self.thread.start()
        else:
            self.commands.put("go")
        kind, payload = self.events.get()
        if kind == "error":
            raise payload
        if kind == "pruned":  # it raised TrialPruned of its own accord
            raise TaskError("train() raised TrialPruned although the study did not prune it")
        return payload  # type: ignore[no-any-return]

    def stop(self) -> None:
        """The study is done with this trial (pruned, or its slot is wanted): the waiting
        report raises TrialPruned; wait a while for the function to unwind."""
        self.stopping = True
        if self.thread.is_alive():
            self.commands.put("stop")
            self.thread.join(UNWIND_S)

    def peak_memory_bytes(self) -> int:
        return self.peak.bytes()

    # -- the function's side -------------------------------------------------------------------
    def _main(self) -> None:
        torch.manual_seed(self.trial.seed)
        try:
            value = self.function(self.trial)
            self.events.put(("done", Returned(_value(value))))
        except TrialPruned:
            self.events.put(("pruned", None))
        except BaseException as e:  # the worker re-raises it as the trial's reason
            self.events.put(("error", e))

    def built(self, optimizer: MultiOptimizer, total_steps: int) -> None:
        self.optimizer, self.total_steps = optimizer, total_steps
        self.started = time.perf_counter()

    def report(self, step: int, metrics: Mapping[str, Any]) -> None:
        if self.stopping:
            raise TrialPruned("the study stopped this trial")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise TaskError(f"trial.report: step must be a whole number >= 0; got {step!r}")
        if self.last_step is not None and step <= self.last_step:
            raise TaskError(
                f"trial.report: steps must increase; got step {step} after step {self.last_step}"
            )
        self.last_step = step
        values = {name: _number(name, v) for name, v in metrics.items()}
        train_loss = values.pop("train_loss", math.nan)
        report = EpochReport(
            epoch=step,
            step=step,
            train_loss=train_loss,
            metrics=values,
            lrs={} if self.optimizer is None else self.optimizer.lrs(),
            elapsed_s=time.perf_counter() - self.started,
            training={"function": self.ref, "total_steps": self.total_steps},
        )
        self.events.put(("report", report))
        if self.commands.get() == "stop":
            raise TrialPruned("the study pruned this trial")


def _number(name: str, value: Any) -> float:
    try:
        return float(value.item() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        raise TaskError(
            f"trial.report: metric {name!r} must be a number (or a one-element tensor); got "
            f"{type(value).__name__}"
        ) from None


def _value(value: Any) -> float | None:
    if value is None:
        return None
    return _number("the value train() returned", value)


def stand_in(grad_clip_norm: float | None) -> TrialConfig:
    """What ``trial.config`` is before a trial is sampled (planning, a dry run): the whole
    model on AdamW at lr 1e-3, with the study's clip norm."""
    return TrialConfig(
        SchemeChoice("single"),
        {"all": GroupConfig("adamw", {"lr": 1e-3})},
        grad_clip_norm=grad_clip_norm,
    )


def dry_run(
    function: TrainFunction, options: Mapping[str, Any], ref: str, grad_clip_norm: float | None
) -> EpochReport:
    """Run ``function`` in this process, on the CPU with the :func:`stand_in` config, up to
    its first report, then stop it there (``TrialPruned`` at the report, as a pruned trial).
    Raises TaskError when it raises first or returns without reporting."""
    run = FunctionRun(
        function,
        stand_in(grad_clip_norm),
        seed=0,
        device=torch.device("cpu"),
        options=options,
        ref=ref,
    )
    try:
        outcome = run.next()
    except TaskError as e:
        raise TaskError(f"task.train {ref!r}: {e}") from e
    except Exception as e:
        raise TaskError(f"task.train {ref!r} raised: {raised_at(e)}") from e
    run.stop()
    if isinstance(outcome, Returned):
        raise TaskError(
            f"task.train {ref!r} returned without calling trial.report(epoch, <metric>=...): "
            "the study's pruner and dashboard need its epochs"
        )
    return outcome


def probe_model(
    function: TrainFunction, options: Mapping[str, Any], ref: str, grad_clip_norm: float | None
) -> torch.nn.Module:
    """The model ``function`` passes to ``trial.build``, running it no further (on the CPU,
    seed 0). Until then its ``trial.config`` is the :func:`stand_in`, for what a function
    reads while it sets up (a Trainer's ``gradient_clip_val``). Raises TaskError when it
    raises first, or returns without building."""
    trial = Trial(stand_in(grad_clip_norm), seed=0, device=torch.device("cpu"), options=options)
    torch.manual_seed(0)
    try:
        function(trial)
    except _Probed as probed:
        return probed.model
    except TaskError as e:
        raise TaskError(f"task.train {ref!r}: {e}") from e
    except Exception as e:
        raise TaskError(
            f"task.train {ref!r} raised before calling trial.build(model): {raised_at(e)}"
        ) from e
    raise TaskError(
        f"task.train {ref!r} returned without calling trial.build(model, total_steps=N): "
        "groupwise builds each trial's optimizer there"
    )
