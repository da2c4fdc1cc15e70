"""The Hugging Face Trainer in a function task: the ``optimizers=(optimizer, scheduler)`` pair
of the trial's config for ``Trainer(...)``, and a ``TrainerCallback`` that reports each
evaluation to the trial (and lets ``TrialPruned`` stop ``trainer.train()``).

    def train(trial: groupwise.Trial) -> None:
        model = GPT2LMHeadModel(GPT2Config(...))
        args = TrainingArguments(..., eval_strategy="epoch", report_to=[])
        trainer = Trainer(model=model, args=args, train_dataset=..., eval_dataset=...,
                          optimizers=optimizers(trial, model, args, train_dataset),
                          callbacks=[ReportCallback(trial)])
        trainer.train()

Parameter names are the model's own (``transformer.h.0.attn.c_attn.weight``; a tied
``lm_head`` is the embedding's tensor, in the embedding's group). The study's metric is the
Trainer's name for it: ``objective: {metric: eval_loss}``.

Needs ``pip install 'groupwise[hf]'`` (transformers 5 and accelerate).
"""

from __future__ import annotations

import math
from collections.abc import Sized
from typing import Any

from groupwise.integrations._extra import require
from groupwise.training import Trial

transformers = require("transformers", "transformers", "hf")

__all__ = ["ReportCallback", "optimizers", "total_steps"]


def total_steps(args: Any, train_dataset: Sized) -> int:
    """The optimizer steps the Trainer will take: ``args.max_steps`` when set, else its
    epochs of update steps (batches of ``args.train_batch_size``, accumulated)."""
    if args.max_steps and args.max_steps > 0:
        return int(args.max_steps)
    size = args.train_batch_size
    batches = (
        len(train_dataset) // size if args.dataloader_drop_last else -(-len(train_dataset) // size)
    )
    k = args.gradient_accumulation_steps
    per_epoch = max(batches // k + int(batches % k > 0), 1)
    return int(math.ceil(args.num_train_epochs * per_epoch))  # noqa: RUF046  (epochs may be a float)


def optimizers(trial: Trial, model: Any, args: Any, train_dataset: Sized) -> tuple[Any, Any]:
    """``Trainer(optimizers=...)``: the trial's optimizer and lr scheduler for ``model`` over
    the Trainer's steps (:func:`total_steps`). The Trainer steps the scheduler after each
    optimizer step; set ``max_grad_norm`` to ``trial.config.grad_clip_norm`` (or 0: none)."""
    return trial.build(model, total_steps=total_steps(args, train_dataset))


class ReportCallback(transformers.TrainerCallback):  # type: ignore[misc,name-defined]
    """Reports each evaluation's metrics (``eval_loss``, ``eval_<yours>``) at the epoch it
    ended (``eval_strategy="epoch"``) or at its global step (``"steps"``)."""

    def __init__(self, trial: Trial) -> None:
        super().__init__()
        self.trial = trial

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **_: Any
    ) -> None:
        numbers = {
            k: float(v)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float)
            and k != "epoch"
            and not k.endswith(("_runtime", "_per_second"))
        }
        by_epoch = str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "epoch"
        step = round(state.epoch) if by_epoch and state.epoch is not None else state.global_step
        self.trial.report(int(step), **numbers)
