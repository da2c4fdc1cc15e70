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
        self.gpu_ids = list(gpu_ids or [])
        self.device = pick_device(self.gpu_ids, torch.cuda.is_available())
        self.trainer: Trainer | None = None

    def where(self) -> dict[str, Any]:
        """Where this worker trains: recorded with every trial it runs."""
        memory = None
        if self.device.type == "cuda":
            memory = torch.cuda.get_device_properties(self.device).total_memory
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": str(self.device),
            "gpu_ids": self.gpu_ids,
            "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device_memory_bytes": memory,
        }

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
        except (torch.OutOfMemoryError, MemoryError) as e:
            return self._out_of_memory(e)
        except Exception as e:  # a trial's own error is data, not a worker crash
            if "can't allocate memory" in str(e):  # torch's CPU allocator says it this way
                return self._out_of_memory(e)
            frame = traceback.extract_tb(e.__traceback__)[-1]
            at = f"{os.path.basename(frame.filename)}:{frame.lineno}"
            return {"state": "failed", "reason": f"{type(e).__name__}: {e} (at {at})"}

    def _out_of_memory(self, error: BaseException) -> dict[str, Any]:
        self.trainer = None  # let go of the trial's tensors before the next one
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        detail = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        return {"state": "out_of_memory", "reason": f"out of memory on {self.device}: {detail}"}


def pick_device(gpu_ids: list[str], cuda_available: bool) -> torch.device:
    """The GPU Ray assigned, else the CPU. Ray sets CUDA_VISIBLE_DEVICES to the assigned ids,
    so the worker sees only its own GPU, and it is ``cuda:0`` whatever its physical index."""
    if gpu_ids and cuda_available:
        return torch.device("cuda", 0)
    return torch.device("cpu")
