"""The worker: a long-lived process (a Ray actor, made by the pool) that keeps its task's data
loaded and its device warm, and trains one trial an epoch per call. It touches no database and
imports no Ray: :mod:`groupwise.execution._pool` wraps it."""

from __future__ import annotations

import os
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch

from groupwise.config import TrialConfig
from groupwise.execution._batching import Candidates, Start
from groupwise.execution._protocol import (
    Finished,
    Placement,
    Reply,
    Stopped,
    Trained,
    WorkerSettings,
)
from groupwise.tasks import Task, TrainFunction, resolve_function, resolve_task, user_frame
from groupwise.training import DivergedError, FunctionRun, Returned, Trainer

__all__ = ["Worker", "pick_device", "task_path"]


def task_path() -> None:
    """Ray's worker setup hook: the driver's directory goes *last* on sys.path, so tasks kept
    there import, but never in place of an installed package."""
    where = os.environ.get("GROUPWISE_TASK_PATH")
    if where and where not in sys.path:
        sys.path.append(where)


class Worker:
    def __init__(
        self, settings: WorkerSettings, gpu_ids: tuple[str, ...] = (), node: str | None = None
    ) -> None:
        torch.set_num_threads(max(1, int(settings.cpus)))
        self.settings = settings
        data_seed = settings.seed if settings.data_seed is None else settings.data_seed
        self.task: Task | None = None
        self.function: TrainFunction | None = None
        if settings.function:
            self.function = resolve_function(settings.task)
        else:
            self.task = resolve_task(settings.task, settings.task_options, seed=data_seed)
        self.gpu_ids = tuple(gpu_ids)
        self.node = node
        self.device = pick_device(list(self.gpu_ids), torch.cuda.is_available())
        self.trainer: Trainer | FunctionRun | None = None
        self.candidates: Candidates | None = None  # workers.batch > 1

    def placement(self) -> Placement:
        """Where this worker trains; answering it also says the worker has started."""
        memory = None
        if self.device.type == "cuda":
            memory = torch.cuda.get_device_properties(self.device).total_memory
        return Placement(
            host=socket.gethostname(),
            pid=os.getpid(),
            device=str(self.device),
            node=self.node,
            gpu_ids=self.gpu_ids,
            visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            device_memory_bytes=memory,
        )

    def step(
        self, config: dict[str, Any] | None = None, seed: int | None = None
    ) -> Trained | Finished | Stopped:
        """Start a trial (when ``config`` is given; ``seed``: its training seed, None: the
        study's) and train one epoch (a function task: run it to its next report). Never
        raises for a trial's own errors: they are a :class:`Stopped` reply."""
        reply: Trained | Finished | Stopped = self.guard(
            lambda: self._step(config, seed), self._let_go
        )
        return reply

    def _step(
        self, config: dict[str, Any] | None, seed: int | None
    ) -> Trained | Finished | Stopped:
        if config is not None:
            self._start(TrialConfig.from_dict(config), self.settings.seed if seed is None else seed)
        if self.trainer is None:
            return Stopped("failed", "worker has no trial to continue")
        if isinstance(self.trainer, Trainer):
            report = self.trainer.run_epoch()
        else:
            outcome = self.trainer.next()
            if isinstance(outcome, Returned):
                self.trainer = None
                return Finished(outcome.value)
            report = outcome
        return Trained(report, self.trainer.peak_memory_bytes(), self.placement())

    def step_batch(self, starts: list[Start], drops: list[int]) -> list[tuple[int, Reply]]:
        """``workers.batch``: start a batch of candidates (``starts``: slot, config, seed;
        None seed: the study's), or let ``drops`` go and train the live ones an epoch. One
        reply per candidate, keyed by its slot."""
        if self.candidates is None:
            if self.task is None:
                raise RuntimeError("a function task is never batched")
            self.candidates = Candidates(self.task, self.device, self.settings.training, self.guard)
        self.candidates.drop(drops)
        early: list[tuple[int, Reply]] = []
        if starts:
            seeded = [(s, c, self.settings.seed if seed is None else seed) for s, c, seed in starts]
            early = self.candidates.start(seeded)
        return early + self.candidates.epoch(self.placement)

    def guard(self, call: Callable[[], Any], let_go: Callable[[], None]) -> Any:
        """``call``'s answer, or the :class:`Stopped` reply a trial's own error makes (after
        ``let_go`` has freed what the trial held, on running out of memory)."""
        try:
            return call()
        except DivergedError as e:
            return Stopped("diverged", str(e))
        except (torch.OutOfMemoryError, MemoryError) as e:
            return self._out_of_memory(e, let_go)
        except Exception as e:  # a trial's own error is data, not a worker crash
            if "can't allocate memory" in str(e):  # torch's CPU allocator says it this way
                return self._out_of_memory(e, let_go)
            # the user's line (a function task's report raises ours), else the last one
            frame = user_frame(e) or traceback.extract_tb(e.__traceback__)[-1]
            at = f"{os.path.basename(frame.filename)}:{frame.lineno}"
            return Stopped("failed", f"{type(e).__name__}: {e} (at {at})")

    def _start(self, config: TrialConfig, seed: int) -> None:
        """Let go of the previous trial (a function task's is stopped, to unwind its
        function), then make this one."""
        if isinstance(self.trainer, FunctionRun):
            self.trainer.stop()
        self.trainer = None  # free the previous trial's model before building the next
        if self.function is not None:
            self.trainer = FunctionRun(
                self.function,
                config,
                seed=seed,
                device=self.device,
                options=self.settings.task_options,
                ref=self.settings.task,
            )
        elif self.task is not None:
            self.trainer = Trainer(
                self.task, config, seed=seed, device=self.device, options=self.settings.training
            )

    def _let_go(self) -> None:
        """Free the trial's tensors (a function task's is stopped first)."""
        if isinstance(self.trainer, FunctionRun):
            self.trainer.stop()
        self.trainer = None

    def _out_of_memory(self, error: BaseException, let_go: Callable[[], None]) -> Stopped:
        let_go()  # let go of the trial's tensors before the next one
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        detail = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        return Stopped("out_of_memory", f"out of memory on {self.device}: {detail}")


def pick_device(gpu_ids: list[str], cuda_available: bool) -> torch.device:
    """The GPU Ray assigned, else the CPU. Ray sets CUDA_VISIBLE_DEVICES to the assigned ids,
    so the worker sees only its own GPU, and it is ``cuda:0`` whatever its physical index."""
    if gpu_ids and cuda_available:
        return torch.device("cuda", 0)
    return torch.device("cpu")
