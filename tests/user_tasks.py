"""A user's own tasks, referenced from study files as "user_tasks:<function>"."""

from __future__ import annotations

import torch
from torch import nn

from groupwise.tasks import Task, TensorSplits

_built = 0


def _data(seed: int) -> TensorSplits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    return TensorSplits(x[:192], y[:192], x[192:], y[192:])


def tiny(*, seed: int = 0, hidden: int = 16) -> Task:
    """A two-layer classifier on generated data: fast enough for many tests."""
    return Task(
        name="tiny",
        build_model=lambda: nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 2)),
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )


class _Exploding(nn.Module):
    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.fail = fail
        self.net = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))

    def forward(self, x):
        if self.fail:
            raise RuntimeError("boom: this model fails on purpose")
        return self.net(x)


def every_other_fails(*, seed: int = 0) -> Task:
    """Every second model a worker builds raises in forward: trial errors as data. (The
    driver's own check of the task trains one that does not.)"""

    def build() -> nn.Module:
        global _built
        if not _in_a_worker():
            return _Exploding(fail=False)
        _built += 1
        return _Exploding(fail=_built % 2 == 0)

    return Task(
        name="every_other_fails",
        build_model=build,
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )


def not_a_task(*, seed: int = 0):
    return {"model": None}


def _in_a_worker() -> bool:
    """In a worker (a Ray actor, or a fast start's local worker), not the driver's check."""
    import multiprocessing
    import sys

    if multiprocessing.current_process().name == "groupwise-local-worker":
        return True
    ray = sys.modules.get("ray")
    return bool(ray and ray.is_initialized() and ray.get_runtime_context().get_actor_id())


class _Faulty(nn.Module):
    """Goes wrong for real at its ``at``-th forward call (mid-trial) in a worker: SIGKILLs its
    own worker process, leaves it with ``os._exit``, runs out of memory, allocates (and
    touches) 256 MiB for that one call, or hangs. With ``marker``, only the first model to get
    there does, and it writes its pid to the marker file; without, every model does. (In the
    driver, whose check of the task trains one step, it never goes wrong.)"""

    def __init__(self, fault: str, at: int, marker: str | None, delay_s: float) -> None:
        super().__init__()
        self.fault, self.at, self.marker, self.delay_s = fault, at, marker, delay_s
        self.calls = 0
        self.net = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))

    def forward(self, x):
        import os
        import signal
        import time

        self.calls += 1
        time.sleep(self.delay_s)
        faulty = self.fault != "none" and _in_a_worker()
        if faulty and self.calls == self.at and self._first():
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "exit":  # what a C extension's abort() or a stray exit() does
                os._exit(3)
            if self.fault == "alloc":  # a real, touched allocation, freed when the call ends
                torch.ones(256 * 2**20, dtype=torch.uint8)
                return self.net(x)
            if self.fault == "oom":  # a real allocation torch's CPU allocator refuses (1 PiB)
                torch.empty(2**50, dtype=torch.uint8)
            if self.fault == "cuda_oom":  # what torch raises when a GPU runs out
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            time.sleep(3600)  # "hang"
        return self.net(x)

    def _first(self) -> bool:
        import os

        if self.marker is None:
            return True
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True


def faulty(
    *,
    seed: int = 0,
    fault: str = "kill",
    at: int = 8,
    marker: str | None = None,
    delay_s: float = 0.0,
    startup_s: float = 0.0,
) -> Task:
    """``tiny``'s data with a model that kills its worker or hangs (see _Faulty); with
    ``fault: none`` and ``delay_s`` it is just slow. ``startup_s`` makes a worker (not the
    driver, which also builds the task once) that long to start."""
    import time

    if startup_s and _in_a_worker():
        time.sleep(startup_s)
    return Task(
        name="faulty",
        build_model=lambda: _Faulty(fault, at, marker, delay_s),
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )


class _Mixed(nn.Module):
    """The ``n``-th model a worker builds: the first kills its worker mid-trial (once, with
    ``marker``), every third raises, every fourth predicts class 0 with certainty whatever it
    is shown (a loss in the tens, far above any other trial's: a median pruner prunes it)."""

    def __init__(self, n: int, marker: str | None) -> None:
        super().__init__()
        self.n, self.marker, self.calls = n, marker, 0
        self.net = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))

    def forward(self, x):
        self.calls += 1
        if self.n == 1 and self.calls == 4 and _Faulty("kill", 4, self.marker, 0.0)._first():
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        if self.n % 3 == 0:
            raise RuntimeError("boom: every third model fails on purpose")
        if self.n % 4 == 0:
            return self.net(x) * 0.0 + torch.tensor([50.0, -50.0])
        return self.net(x)


def mixed(*, seed: int = 0, marker: str | None = None) -> Task:
    """``tiny``'s data with models that are lost, fail, get pruned or train (see _Mixed)."""

    def build() -> nn.Module:
        global _built
        if not _in_a_worker():  # the driver's check of the task: a model that trains
            return _Exploding(fail=False)
        _built += 1
        return _Mixed(_built, marker)

    return Task(name="mixed", build_model=build, data=_data(seed), loss=nn.functional.cross_entropy)


def always_fails(*, seed: int = 0) -> Task:
    """Every model raises in forward, for the same reason: a broken task."""
    return Task(
        name="always_fails",
        build_model=lambda: _Exploding(fail=True),
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )


class _Race(nn.Module):
    """The first model to train in a worker (``marker`` decides, across workers) is the hare:
    quick, and a good fit. Every other is a tortoise: 0.3 s per forward call, and a loss in
    the tens (it predicts class 0 whatever it is shown)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker, self.hare = marker, None
        self.net = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))

    def forward(self, x):
        import time

        if self.hare is None:
            self.hare = _in_a_worker() and _Faulty("none", 0, self.marker, 0.0)._first()
        if self.hare:
            return self.net(x)
        time.sleep(0.3)
        return self.net(x) * 0.0 + torch.tensor([50.0, -50.0])


def race(*, seed: int = 0, marker: str = "") -> Task:
    """``tiny``'s data; one hare, then tortoises (see _Race)."""
    return Task(
        name="race",
        build_model=lambda: _Race(marker),
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )


def lazy(*, seed: int = 0) -> Task:
    """Lazy modules, as users write them: shapes inferred at the first forward pass."""
    return Task(
        name="lazy",
        build_model=lambda: nn.Sequential(
            nn.LazyLinear(16), nn.LazyBatchNorm1d(), nn.Tanh(), nn.Linear(16, 8), nn.LazyLinear(2)
        ),
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )


class _FailsInWorkers(nn.Module):
    """Trains in the driver (a check's one batch passes) and raises in every worker: a task
    broken only where it runs, as one whose data lives on the cluster's nodes alone."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(8, 2)

    def forward(self, x):
        if _in_a_worker():
            raise RuntimeError("the dataset is not on this node")
        return self.net(x)


def fails_in_workers(*, seed: int = 0) -> Task:
    return Task(
        name="fails_in_workers",
        build_model=_FailsInWorkers,
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )


class _BrokenWhile(nn.Module):
    """Raises in every worker while the ``marker`` file exists (a task the user then fixes);
    in the driver's check it trains."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.net = nn.Linear(8, 2)

    def forward(self, x):
        from pathlib import Path

        if _in_a_worker() and Path(self.marker).exists():
            raise RuntimeError("the dataset is not mounted")
        return self.net(x)


def broken_while(*, seed: int = 0, marker: str = "") -> Task:
    return Task(
        name="broken_while",
        build_model=lambda: _BrokenWhile(marker),
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )


def seeded(*, seed: int = 0) -> Task:
    """``tiny`` reporting the seed it was built with as a metric (``val_data_seed``)."""
    task = tiny(seed=seed)
    return Task(
        name="seeded",
        build_model=task.build_model,
        data=task.data,
        loss=task.loss,
        metrics={"data_seed": lambda out, y: float(seed)},
    )


class _Scalar(nn.Module):
    """One number, drawn from torch's seeded RNG as every layer's initialisation is."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(1))

    def forward(self, x):
        return self.w.expand(len(x), 1)


def fluke(*, seed: int = 0) -> Task:
    """A task where the study's own seed is a fluke: the validation target is exactly the
    initial value training seed 0 draws, and training pulls the value 0.1 away from it. An
    untrained config (lr ~ 0) scores 0 on seed 0 and (w0 - 1.54)^2 on any other; a trained
    one scores about 0.01 on every seed. The single best trial is the untrained one; its
    confirmation on fresh seeds loses."""
    target = torch.randn(1, generator=torch.Generator().manual_seed(0)).item()
    x = torch.zeros(64, 1)
    return Task(
        name="fluke",
        build_model=_Scalar,
        data=TensorSplits(
            x, torch.full((64, 1), target + 0.1), x[:16], torch.full((16, 1), target)
        ),
        loss=nn.functional.mse_loss,
    )


class _Raises(nn.Module):
    def __init__(self, error: type[BaseException]) -> None:
        super().__init__()
        self.error = error
        self.net = nn.Linear(8, 2)

    def forward(self, x):
        raise self.error("this model cannot take a batch on purpose")


def raises(*, seed: int = 0, error: str = "runtime") -> Task:
    """A model whose forward raises (``error``: runtime or memory): a trial's own error, or
    running out of memory, as a worker meets it."""
    kind = {"runtime": RuntimeError, "memory": MemoryError}[error]
    return Task(
        name="raises",
        build_model=lambda: _Raises(kind),
        data=_data(seed),
        loss=nn.functional.cross_entropy,
    )
