"""The worker: a long-lived process (a Ray actor) that keeps its task's data loaded and its
device warm, and trains one trial an epoch per call. It touches no database."""

from __future__ import annotations

import os
import socket
import traceback
from dataclasses import asdict
from typing import Any

import torch

from groupwise.config import TrialConfig
from groupwise.tasks import resolve_task
from groupwise.training import DivergedError, Trainer


class Worker:
    def __init__(
        self,
        task: str,
        task_options: dict[str, Any],
        seed: int,
        batch_size: int,
        steps_per_epoch: int | None,
        cpus: float,
        gpu_ids: list[str] | None = None,
    ) -> None:
        torch.set_num_threads(max(1, int(cpus)))
        self.task = resolve_task(task, task_options, seed=seed)
        self.seed = seed
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.device = pick_device(gpu_ids or [])
        self.trainer: Trainer | None = None

    def where(self) -> dict[str, Any]:
        """Where this worker trains: recorded with every trial it runs."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "device": str(self.device)}

    def step(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start a trial (when ``config`` is given) and train one epoch.

        Returns ``{"state": "epoch", "report": {...}}`` or, when the trial cannot go on,
        ``{"state": "diverged" | "failed", "reason": ...}``; never raises for trial errors.
        """
        try:
            if config is not None:
                self.trainer = None  # free the previous trial's model before building the next
                self.trainer = Trainer(
                    self.task,
                    TrialConfig.from_dict(config),
                    seed=self.seed,
                    batch_size=self.batch_size,
                    steps_per_epoch=self.steps_per_epoch,
                    device=self.device,
                )
            if self.trainer is None:
                return {"state": "failed", "reason": "worker has no trial to continue"}
            report = self.trainer.run_epoch()
            return {
                "state": "epoch",
                "report": asdict(report),
                "peak_memory_bytes": self.trainer.peak_memory_bytes(),
                **self.where(),
            }
        except DivergedError as e:
            return {"state": "diverged", "reason": str(e)}
        except Exception as e:  # a trial's own error is data, not a worker crash
            frame = traceback.extract_tb(e.__traceback__)[-1]
            at = f"{os.path.basename(frame.filename)}:{frame.lineno}"
            return {"state": "failed", "reason": f"{type(e).__name__}: {e} (at {at})"}


def pick_device(gpu_ids: list[str]) -> torch.device:
    """The GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES, so it is cuda:0), else the CPU."""
    if gpu_ids and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")
