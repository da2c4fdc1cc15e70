"""A user's Lightning training function (``user_lightning:train``): a LightningModule on
generated data, its optimizer from the trial, reporting through groupwise's callback. Option
``bad_every_other``: every second trial a worker runs logs a val_loss of 51 (the others 1.0),
so a median pruner prunes it at its first report; ``marker``: a file each pruned trial appends
its epoch to when TrialPruned comes out of Lightning's ``fit``."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import groupwise
from groupwise.integrations.lightning import ReportCallback, configure_optimizers

_calls = 0


class Module(pl.LightningModule):
    def __init__(self, trial: groupwise.Trial, bad: bool) -> None:
        super().__init__()
        self.trial, self.bad = trial, bad
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        if "bad_every_other" in self.trial.options:
            loss = torch.tensor(51.0 if self.bad else 1.0)
        self.log("val_loss", loss)

    def configure_optimizers(self):
        return configure_optimizers(self.trial, self)


def loaders(seed: int) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    order = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(x[:192], y[:192]), 32, shuffle=True, generator=order)
    return train, DataLoader(TensorDataset(x[192:], y[192:]), 64)


def train(trial: groupwise.Trial) -> None:
    global _calls
    _calls += 1
    module = Module(trial, bad=_calls % 2 == 0)
    trainer = pl.Trainer(
        max_epochs=int(trial.options.get("epochs", 3)),
        accelerator="cpu",
        devices=1,
        callbacks=[ReportCallback(trial)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    try:
        trainer.fit(module, *loaders(trial.seed))
    except groupwise.TrialPruned:  # out of Lightning's fit, as the user sees it
        if trial.options.get("marker"):
            with open(trial.options["marker"], "a") as f:
                f.write(f"{trainer.current_epoch + 1}\n")
        raise
