"""Training: Task + TrialConfig -> one EpochReport per call. No Optuna, SQL or Ray here.

:class:`Trainer` runs one epoch per call, so the caller (a worker) can report each epoch and
stop early when told to. Seeds fix the model's
initialisation and the order of the data, so the same config and seed train identically.
A loss that stops being finite, or grows past DIVERGENCE_FACTOR times the first batch's loss,
stops the trial with the reason "diverged" (a bounded model can blow up without overflowing).

It trains as users train (:class:`TrainingOptions`): the config's lr schedule over the run's
known number of optimizer steps (``groupwise.build``), mixed precision (bf16 or fp16 autocast;
fp16 with a GradScaler), gradients clipped to a norm, several micro-batches per step, and
``torch.compile``. A step is ``accumulate`` micro-batches of ``batch_size``, their losses
averaged, so it equals one step on a batch ``accumulate`` times larger.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from groupwise.config import TrialConfig
from groupwise.errors import TaskError
from groupwise.optim import MultiOptimizer, build
from groupwise.tasks import Task, raised_at
from groupwise.training._memory import PeakMemory

__all__ = ["DivergedError", "EpochReport", "Trainer", "TrainingOptions", "check_step"]

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class TrainingOptions:
    """How every trial of a study trains (the study file's ``training:``)."""

    epochs: int = 1  # the run's length, so that the schedule knows its total steps
    steps_per_epoch: int | None = None  # optimizer steps; None: one pass over the data
    batch_size: int = 64  # of one micro-batch
    accumulate: int = 1  # micro-batches per optimizer step
    precision: Precision = "fp32"
    grad_clip_norm: float | None = None  # the study's; a config's own wins
    compile: bool = False


# Checking the loss forces a device sync; on a GPU that costs, so look every few steps.
_CHECK_EVERY = 8
# A training loss this many times the first batch's (with a floor of 1) means divergence.
DIVERGENCE_FACTOR = 1e4


class DivergedError(Exception):
    """The training loss stopped being a finite number."""


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based
    step: int  # optimizer steps so far
    train_loss: float
    metrics: Mapping[str, float]  # val_loss and val_<metric> for each task metric
    lrs: Mapping[str, float]  # label -> lr at the end of the epoch
    elapsed_s: float  # since the trial began, torch.compile's compilation not counted
    # how the trial trains (precision, accumulate, clip norm, total steps, compile and the
    # seconds torch.compile took): recorded with its run
    training: Mapping[str, Any] = field(default_factory=dict)


# Samples in the one batch a check trains on: enough for batch statistics, cheap on any model.
CHECK_BATCH = 4


def check_step(task: Task, model: torch.nn.Module, batch_size: int) -> None:
    """One training step's forward and backward and one evaluation batch on a few samples,
    as a trial makes them, without an optimizer: what ``validate`` and a launch run before
    any worker starts, so a model that cannot train is one line naming the file and line
    that raised (not five failed trials). Raises TaskError."""
    generator = torch.Generator().manual_seed(0)
    size = min(batch_size, CHECK_BATCH)
    try:
        model.train()
        x, y = next(iter(task.data.train_batches(generator, size, 1)))
        loss = task.loss(model(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        model.eval()
        with torch.no_grad():
            x, y = next(iter(task.data.eval_batches(size)))
            out = model(x)
            task.loss(out, y)
            for metric in task.metrics.values():
                metric(out, y)
    except Exception as e:
        raise TaskError(f"a training step on {size} samples failed: {raised_at(e)}") from e
    finally:
        model.zero_grad(set_to_none=True)
        model.train()


class Trainer:
    """One trial's model, optimizer, scheduler and data order, advanced an epoch at a time."""

    def __init__(
        self,
        task: Task,
        config: TrialConfig,
        *,
        seed: int = 0,
        batch_size: int = 64,
        steps_per_epoch: int | None = None,
        device: str | torch.device = "cpu",
        options: TrainingOptions | None = None,
    ) -> None:
        self.task = task
        self.device = torch.device(device)
        given = options or TrainingOptions(batch_size=batch_size, steps_per_epoch=steps_per_epoch)
        self.options = given
        self.batch_size = given.batch_size
        self.seed = seed
        torch.manual_seed(seed)
        self.model = task.make_model().to(self.device)
        self.steps_per_epoch = _steps_per_epoch(task, given)
        self.total_steps = given.epochs * self.steps_per_epoch
        self.optimizer: MultiOptimizer
        self.optimizer, self.scheduler = build(self.model, config, total_steps=self.total_steps)
        self.clip = (
            config.grad_clip_norm if config.grad_clip_norm is not None else given.grad_clip_norm
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=given.precision == "fp16")
        self.forward = torch.compile(self.model) if given.compile else self.model
        self.compile_s = 0.0
        self._compiled: set[str] = set()  # which of train and eval have compiled
        self.epoch = 0
        self.step = 0
        self.loss_limit: float | None = None
        self.started = time.perf_counter()
        self.peak = PeakMemory(self.device)  # this trial's, not the worker's lifetime

    def run_epoch(self) -> EpochReport:
        """Train one epoch and evaluate; raises :class:`DivergedError` on a non-finite loss."""
        self.epoch += 1
        self.model.train()
        self.optimizer.train()  # schedule-free optimizers step other weights than they evaluate
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        total = torch.zeros((), device=self.device)
        count = 0
        k = self.options.accumulate
        batches = self.task.data.train_batches(generator, self.batch_size, self.steps_per_epoch * k)
        for step_batches in _groups_of(batches, k):
            loss = self._train_step(step_batches)
            total += loss
            count += 1
            if self.loss_limit is None:
                self.loss_limit = DIVERGENCE_FACTOR * max(abs(loss.item()), 1.0)
            elif count % _CHECK_EVERY == 0:
                self._check(loss.item())
        train_loss = total.item() / max(count, 1)
        self._check(train_loss)
        metrics = self.evaluate()
        if not math.isfinite(metrics["val_loss"]):
            raise DivergedError(
                f"diverged: validation loss became {metrics['val_loss']} in epoch {self.epoch}"
            )
        return EpochReport(
            epoch=self.epoch,
            step=self.step,
            train_loss=train_loss,
            metrics=metrics,
            lrs=self.optimizer.lrs(),
            elapsed_s=time.perf_counter() - self.started - self.compile_s,
            training=self.facts(),
        )

    def _train_step(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """One optimizer step over ``batches`` (their mean loss, as one larger batch's):
        autocast, backward through the scaler, clip, step, schedule. Returns the mean loss."""
        self.optimizer.zero_grad(set_to_none=True)
        mean = torch.zeros((), device=self.device)
        for x, y in batches:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._first_call("train"), self._autocast():
                loss = self.task.loss(self.forward(x), y) / len(batches)
            # backward outside autocast, as torch asks: its ops run in the dtypes the forward
            # chose (under autocast they would be cast again)
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            mean += loss.detach().float()
        if self.clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return mean

    def facts(self) -> dict[str, Any]:
        """How this trial trains, as its run records it."""
        o = self.options
        return {
            "precision": o.precision,
            "accumulate": o.accumulate,
            "grad_clip_norm": self.clip,
            "compile": o.compile,
            "compile_s": round(self.compile_s, 3) if o.compile else None,
            "total_steps": self.total_steps,
        }

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.device, self.options.precision)

    @contextlib.contextmanager
    def _first_call(self, mode: str) -> Iterator[None]:
        """Time the compiled model's first call in ``mode`` (where torch.compile compiles),
        to report it apart from training time."""
        if not self.options.compile or mode in self._compiled:
            yield
            return
        began = time.perf_counter()
        yield
        self._compiled.add(mode)
        self.compile_s += time.perf_counter() - began

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        self.optimizer.eval()
        sums: dict[str, float] = {"val_loss": 0.0, **{f"val_{m}": 0.0 for m in self.task.metrics}}
        seen = 0
        for x, y in self.task.data.eval_batches(max(self.batch_size, 256)):
            x, y = x.to(self.device), y.to(self.device)
            with self._first_call("eval"), self._autocast():
                out = self.forward(x)
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                out = out.float()  # the metrics in full precision, as a user reads them
            n = len(x)
            sums["val_loss"] += self.task.loss(out, y).item() * n
            for name, metric in self.task.metrics.items():
                sums[f"val_{name}"] += metric(out, y) * n
            seen += n
        return {k: v / max(seen, 1) for k, v in sums.items()}

    def peak_memory_bytes(self) -> int:
        """This trial's peak memory (:class:`PeakMemory`)."""
        return self.peak.bytes()

    def _check(self, value: float) -> None:
        """Stop a trial whose loss is no longer finite, or has grown past the limit."""
        error = divergence(value, self.loss_limit, self.epoch, self.step)
        if error is not None:
            raise error


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager[Any]:
    """The autocast a trial's forward runs under (none in fp32)."""
    dtype = _DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def divergence(value: float, limit: float | None, epoch: int, step: int) -> DivergedError | None:
    """The error that stops a trial whose training loss ``value`` is no longer finite or has
    grown past ``limit`` (None: it goes on)."""
    if math.isfinite(value) and (limit is None or value <= limit):
        return None
    over = "" if not math.isfinite(value) or limit is None else f" (over the limit {limit:.3g})"
    return DivergedError(
        f"diverged: training loss became {value:.4g}{over} in epoch {epoch} (step {step})"
    )


def _steps_per_epoch(task: Task, options: TrainingOptions) -> int:
    """Optimizer steps per epoch: the study's, else as many whole steps of ``accumulate``
    micro-batches as one pass over the training data holds (at least one)."""
    if options.steps_per_epoch is not None:
        return options.steps_per_epoch
    counted = getattr(task.data, "batches_per_epoch", None)
    if callable(counted):
        micro = int(counted(options.batch_size))
    else:  # a user's data: count one pass (its batches are drawn, not trained on)
        generator = torch.Generator().manual_seed(0)
        micro = sum(1 for _ in task.data.train_batches(generator, options.batch_size, None))
    return max(micro // options.accumulate, 1)


def _groups_of(batches: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """``batches`` in lists of ``size`` (a shorter last one is dropped: a step is whole)."""
    group: list[Any] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
