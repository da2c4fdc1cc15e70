"""PyTorch Lightning in a function task: a callback that reports each validation epoch to the
trial (and lets ``TrialPruned`` stop ``trainer.fit``), and what ``configure_optimizers``
returns for the trial's config.

    def train(trial: groupwise.Trial) -> None:
        module = MyModule(trial)                 # its configure_optimizers calls ours
        trainer = pl.Trainer(max_epochs=5, callbacks=[ReportCallback(trial)])
        trainer.fit(module, train_loader, val_loader)

    class MyModule(pl.LightningModule):
        def configure_optimizers(self):
            return configure_optimizers(self.trial, self)

Needs ``pip install 'groupwise[lightning]'`` (pytorch-lightning 2.6 or later).
"""

from __future__ import annotations

import math
from typing import Any

from groupwise.integrations._extra import require
from groupwise.training import Trial

pl = require("pytorch_lightning", "pytorch-lightning", "lightning")

__all__ = ["ReportCallback", "configure_optimizers"]


def configure_optimizers(
    trial: Trial, module: Any, total_steps: int | None = None
) -> dict[str, Any]:
    """The optimizer and the per-step lr scheduler of the trial's config for ``module`` (a
    LightningModule), as ``configure_optimizers`` returns them. ``total_steps``: the run's
    optimizer steps (default: ``trainer.estimated_stepping_batches``). Clip gradients with the
    Trainer's ``gradient_clip_val=trial.config.grad_clip_norm`` when it is set."""
    if total_steps is None:
        steps = module.trainer.estimated_stepping_batches
        if not math.isfinite(steps):
            raise ValueError(
                "configure_optimizers: the Trainer cannot estimate its steps (max_epochs=-1 "
                "or an iterable dataset): pass total_steps"
            )
        total_steps = int(steps)
    optimizer, scheduler = trial.build(module, total_steps=total_steps)
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
    }


class ReportCallback(pl.Callback):  # type: ignore[misc,name-defined]
    """Reports ``trainer.callback_metrics`` (what the module logged: its ``val_loss``, and
    ``train_loss`` if logged per epoch) at the end of each validation epoch, as epoch
    ``current_epoch + 1``; the sanity check's validation is not reported."""

    def __init__(self, trial: Trial) -> None:
        super().__init__()
        self.trial = trial

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if getattr(value, "numel", lambda: 1)() == 1
        }
        self.trial.report(trainer.current_epoch + 1, **metrics)
