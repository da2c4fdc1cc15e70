"""K candidates of one model trained at once: their parameters stacked on a leading axis, one
forward for all of them (``torch.func.vmap`` over ``functional_call``), one backward, and a
batched optimizer step in which every hyperparameter is a [K] tensor
(:class:`~groupwise.optim.BatchedOptimizer`).

Candidates batch when they share the task, the seed, the scheme and every group's optimizer
kind and settings, and differ only in numbers (lrs, weight decays, momenta, betas, their
schedules and clip norms): :func:`batch_key`. They start from the same initialisation and see
the same batches, which is what each would see trained alone with that seed, so each
candidate's losses, reports and final parameters are those of :class:`Trainer` with its config
(to float rounding). Each candidate leaves the batch on its own: one that diverges stops at
the step :class:`Trainer` would stop it, one the study prunes is dropped (:meth:`drop`), and
the others go on.

What cannot batch trains alone, with the reason (:func:`unbatchable_config`,
:func:`batch_check`): an optimizer kind or setting with no batched step, fp16 (its GradScaler
is one per trial), ``torch.compile``, a model ``vmap`` cannot follow (batch norm updating its
running statistics in training mode, data-dependent control flow).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from groupwise.config import TrialConfig
from groupwise.optim import BatchedOptimizer, build, per_candidate, unbatchable
from groupwise.partition import partition
from groupwise.tasks import Task, raised_at
from groupwise.training._loop import (
    _CHECK_EVERY,
    CHECK_BATCH,
    DIVERGENCE_FACTOR,
    DivergedError,
    EpochReport,
    TrainingOptions,
    _groups_of,
    _steps_per_epoch,
    autocast,
    divergence,
)
from groupwise.training._memory import PeakMemory

__all__ = ["BatchedTrainer", "batch_check", "batch_key", "unbatchable_config"]

Outcome = EpochReport | DivergedError


def unbatchable_config(config: TrialConfig, options: TrainingOptions) -> str | None:
    """Why trials of this config train alone (None: they can share a batch)."""
    if options.precision == "fp16":
        return "fp16 trains with a GradScaler of its own per trial"
    if options.compile:
        return "torch.compile compiles one model per trial"
    for label, group in config.groups.items():
        reason = unbatchable(group.optimizer, group.hyperparameters)
        if reason is not None:
            return f"groups.{label}: {reason}"
    return None


def batch_key(config: TrialConfig) -> str:
    """Equal for configs that may share a batch: the same scheme and, per label, the same
    optimizer kind and settings other than the numbers a batch carries per candidate."""
    groups = {}
    for label, group in config.groups.items():
        numbers = per_candidate(group.optimizer)
        groups[label] = [
            group.optimizer,
            {k: v for k, v in group.to_data().items() if k not in numbers and k != "optimizer"},
        ]
    return json.dumps([config.scheme.to_data(), groups], sort_keys=True, default=str)


class BatchedTrainer:
    """K candidates (their configs; one seed) advanced an epoch at a time, as K
    :class:`Trainer` s would be. Candidates are known by their index in ``configs``."""

    def __init__(
        self,
        task: Task,
        configs: Sequence[TrialConfig],
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        options: TrainingOptions | None = None,
    ) -> None:
        self.task = task
        self.device = torch.device(device)
        self.options = options or TrainingOptions()
        self.seed = seed
        torch.manual_seed(seed)
        self.model = task.make_model().to(self.device)
        self.steps_per_epoch = _steps_per_epoch(task, self.options)
        self.total_steps = self.options.epochs * self.steps_per_epoch
        # each candidate's config checked as Trainer's build checks it: one that fails
        # leaves before the first step, with the reason it would have failed with alone
        self.failed: dict[int, str] = {}
        for i, config in enumerate(configs):
            try:
                build(self.model, config, total_steps=self.total_steps)
            except Exception as e:
                self.failed[i] = f"{type(e).__name__}: {e}"
        self.ids = [i for i in range(len(configs)) if i not in self.failed]
        kept = [configs[i] for i in self.ids]
        k = len(self.ids)
        self.params = {
            name: p.detach().unsqueeze(0).repeat(k, *[1] * p.dim()).requires_grad_(True)
            for name, p in self.model.named_parameters()
        }
        self.buffers = dict(self.model.named_buffers())
        groups = partition(self.model, configs[0].scheme) if kept else {}
        self.optimizer = BatchedOptimizer(self.params, groups, kept, self.total_steps)
        clips = [_clip_of(c, self.options) for c in kept]
        self.clips = torch.tensor(clips, dtype=torch.float32, device=self.device)
        self.totals = torch.zeros(len(self.ids), device=self.device)  # the epoch's losses
        self.loss_limits: Tensor | None = None
        self.epoch = 0
        self.step = 0
        self.started = time.perf_counter()
        self.peak = PeakMemory(self.device)

    # -- the batch --------------------------------------------------------------------------
    def _forward(self, x: Tensor) -> Any:
        def one(params: dict[str, Tensor], x: Tensor) -> Any:
            return functional_call(self.model, (params, self.buffers), (x,))

        return vmap(one, in_dims=(0, None), randomness="same")(self.params, x)

    def drop(self, ids: Sequence[int]) -> None:
        """These candidates leave the batch (pruned, diverged, finished)."""
        keep = [j for j, i in enumerate(self.ids) if i not in set(ids)]
        if len(keep) == len(self.ids):
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        for name, p in self.params.items():
            self.params[name] = p.detach()[index].requires_grad_(True)
        self.optimizer.params = self.params
        self.optimizer.keep(keep)
        self.clips = self.clips[index]
        self.totals = self.totals[index]
        if self.loss_limits is not None:
            self.loss_limits = self.loss_limits[index]
        self.ids = [self.ids[j] for j in keep]

    def parameters_of(self, i: int) -> dict[str, Tensor]:
        """Candidate ``i``'s parameters now, by name (a copy)."""
        if i not in self.ids:
            raise ValueError(f"candidate {i} has left the batch (pruned, diverged or failed)")
        j = self.ids.index(i)
        return {name: p[j].detach().clone() for name, p in self.params.items()}

    # -- an epoch ---------------------------------------------------------------------------
    def run_epoch(self) -> dict[int, Outcome]:
        """Train every candidate in the batch one epoch and evaluate it: each one's
        :class:`EpochReport`, or the :class:`DivergedError` that stopped it (it has left)."""
        self.epoch += 1
        self.model.train()
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.totals = torch.zeros(len(self.ids), device=self.device)
        outcomes: dict[int, Outcome] = {}
        count = 0
        k = self.options.accumulate
        size = self.options.batch_size
        batches = self.task.data.train_batches(generator, size, self.steps_per_epoch * k)
        for step_batches in _groups_of(batches, k):
            if not self.ids:
                break
            losses = self._train_step(step_batches)
            self.totals += losses
            count += 1
            if self.loss_limits is None:
                self.loss_limits = DIVERGENCE_FACTOR * losses.abs().clamp(min=1.0)
            elif count % _CHECK_EVERY == 0:
                self._check(losses, outcomes)
        self._check(self.totals / max(count, 1), outcomes)
        if not self.ids:
            return outcomes
        return {**outcomes, **self._reports(self.totals / max(count, 1))}

    def _train_step(self, batches: list[tuple[Tensor, Tensor]]) -> Tensor:
        """One optimizer step of every candidate over ``batches``; their mean losses [K]."""
        for p in self.params.values():
            p.grad = None
        mean = torch.zeros(len(self.ids), device=self.device)
        for x, y in batches:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                out = self._forward(x)
                losses = torch.stack([self.task.loss(out[j], y) for j in range(len(self.ids))])
                losses = losses / len(batches)
            losses.sum().backward()  # type: ignore[no-untyped-call]
            mean += losses.detach().float()
        self._clip()
        self.optimizer.step()
        self.step += 1
        return mean

    def _clip(self) -> None:
        """Each candidate's gradients clipped to its own norm, as clip_grad_norm_ clips."""
        if bool(torch.isinf(self.clips).all()):
            return
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])
        total = torch.linalg.vector_norm(norms, dim=0)
        coefficient = (self.clips / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coefficient.to(g.dtype).view(-1, *[1] * (g.dim() - 1)))

    def _check(self, losses: Tensor, outcomes: dict[int, Outcome]) -> None:
        """Stop each candidate whose loss is no longer finite or has grown past its limit,
        with :class:`Trainer`'s reason; it leaves the batch."""
        limits = self.loss_limits.tolist() if self.loss_limits is not None else None
        gone = []
        for j, value in enumerate(losses.tolist()):
            error = divergence(value, None if limits is None else limits[j], self.epoch, self.step)
            if error is not None:
                outcomes[self.ids[j]] = error
                gone.append(self.ids[j])
        self.drop(gone)

    def _reports(self, train_losses: Tensor) -> dict[int, Outcome]:
        metrics = self.evaluate()
        reports: dict[int, Outcome] = {}
        gone = []
        for j, i in enumerate(self.ids):
            if not math.isfinite(metrics[j]["val_loss"]):
                reports[i] = DivergedError(
                    f"diverged: validation loss became {metrics[j]['val_loss']} in epoch "
                    f"{self.epoch}"
                )
                gone.append(i)
                continue
            reports[i] = EpochReport(
                epoch=self.epoch,
                step=self.step,
                train_loss=float(train_losses[j]),
                metrics=metrics[j],
                lrs=self.optimizer.lrs(j),
                elapsed_s=time.perf_counter() - self.started,
                training=self.facts(j),
            )
        self.drop(gone)
        return reports

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Each candidate's validation metrics, in batch order."""
        self.model.eval()
        # nn.MultiheadAttention's fused inference path has no vmap rule (torch falls back
        # to a loop over the candidates): evaluate on the path training takes
        fast = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        k = len(self.ids)
        names = ["val_loss", *(f"val_{m}" for m in self.task.metrics)]
        sums = [dict.fromkeys(names, 0.0) for _ in range(k)]
        seen = 0
        try:
            for x, y in self.task.data.eval_batches(max(self.options.batch_size, 256)):
                x, y = x.to(self.device), y.to(self.device)
                with self._autocast():
                    out = self._forward(x)
                n = len(x)
                for j in range(k):
                    one = out[j].float() if out.is_floating_point() else out[j]
                    sums[j]["val_loss"] += self.task.loss(one, y).item() * n
                    for name, metric in self.task.metrics.items():
                        sums[j][f"val_{name}"] += metric(one, y) * n
                seen += n
        finally:
            torch.backends.mha.set_fastpath_enabled(fast)
            self.model.train()
        return [{key: v / max(seen, 1) for key, v in s.items()} for s in sums]

    def facts(self, j: int) -> dict[str, Any]:
        """How candidate ``j`` (batch order) trains, as its run records it."""
        clip = float(self.clips[j])
        o = self.options
        return {
            "precision": o.precision,
            "accumulate": o.accumulate,
            "grad_clip_norm": None if math.isinf(clip) else clip,
            "compile": False,
            "compile_s": None,
            "total_steps": self.total_steps,
            "batched": len(self.ids),
        }

    def peak_memory_bytes(self) -> int:
        return self.peak.bytes()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.device, self.options.precision)


def _clip_of(config: TrialConfig, options: TrainingOptions) -> float:
    """A candidate's clip norm as :class:`Trainer` takes it (the config's, else the
    study's; inf: none)."""
    clip = config.grad_clip_norm if config.grad_clip_norm is not None else options.grad_clip_norm
    return math.inf if clip is None else clip


def batch_check(task: Task, config: TrialConfig, options: TrainingOptions) -> str | None:
    """Why ``config``'s trials of ``task`` cannot train in a batch (None: they can): its
    settings, then one batched step of two copies on a few samples (a model ``vmap`` cannot
    follow fails here, not in a trial)."""
    reason = unbatchable_config(config, options)
    if reason is not None:
        return reason
    size = min(options.batch_size, CHECK_BATCH)
    checking = TrainingOptions(epochs=1, steps_per_epoch=1, batch_size=size)
    try:
        trainer = BatchedTrainer(task, [config, config], options=checking)
        if trainer.failed:
            return None  # the config itself fails: its trial says so, alone or batched
        generator = torch.Generator().manual_seed(0)
        trainer._train_step([next(iter(task.data.train_batches(generator, size, 1)))])
        trainer.evaluate()
    except Exception as e:
        return f"the model cannot train under torch.func.vmap: {raised_at(e)}"
    return None
