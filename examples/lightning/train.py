"""Searching with PyTorch Lightning: a LightningModule whose ``configure_optimizers`` returns the
trial's optimizer and scheduler, and a callback that reports each validation epoch.

    pip install 'groupwise[lightning]'
    groupwise launch examples/lightning/study.yaml   # from the repository root

Real data, offline: scikit-learn's bundled wine recognition data.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import groupwise
from groupwise.integrations.lightning import ReportCallback, configure_optimizers


def loaders(batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    y = torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))  # the split
    train, val = order[:130], order[130:]
    shuffle = torch.Generator().manual_seed(seed)  # the trial's batch order
    return (
        DataLoader(TensorDataset(x[train], y[train]), batch_size, shuffle=True, generator=shuffle),
        DataLoader(TensorDataset(x[val], y[val]), 256),
    )


class Classifier(pl.LightningModule):
    def __init__(self, trial: groupwise.Trial, hidden: int) -> None:
        super().__init__()
        self.trial = trial
        self.net = nn.Sequential(
            nn.Linear(13, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, 3)
        )

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        x, y = batch
        out = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_accuracy", (out.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> dict:
        return configure_optimizers(self.trial, self)


def train(trial: groupwise.Trial) -> None:
    options = trial.options
    module = Classifier(trial, options.get("hidden", 32))
    train_loader, val_loader = loaders(options.get("batch_size", 16), trial.seed)
    trainer = pl.Trainer(
        max_epochs=options.get("epochs", 4),
        accelerator="gpu" if trial.device.type == "cuda" else "cpu",
        devices=1,
        gradient_clip_val=trial.config.grad_clip_norm,
        callbacks=[ReportCallback(trial)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_loader, val_loader)
