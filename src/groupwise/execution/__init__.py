"""Execution: the driver loop, the Ray worker pool (the only module importing Ray), and the
worker that trains one epoch per call. The ledger in ``groupwise.store`` records it all.

Names load on first use (PEP 562): a worker process unpickles ``_pool._RayWorker``, and
importing this package must not drag the driver's Optuna and SQL into it (seconds of
start-up per worker, measured in BENCHMARKS.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from groupwise.execution._address import unreachable
    from groupwise.execution._driver import STOPPED, Driver
    from groupwise.execution._head import AUTH_ENV, LocalHead, own_child
    from groupwise.execution._launch import LaunchResult, check_launch, launch
    from groupwise.execution._progress import Progress
    from groupwise.execution._protocol import (
        Lost,
        Placement,
        Reply,
        Stopped,
        Trained,
        WorkerSettings,
    )
    from groupwise.execution._worker import Worker, pick_device

_LAZY = {
    "Driver": "_driver",
    "Progress": "_progress",
    "LaunchResult": "_launch",
    "launch": "_launch",
    "check_launch": "_launch",
    "unreachable": "_address",
    "AUTH_ENV": "_head",
    "LocalHead": "_head",
    "own_child": "_head",
    "STOPPED": "_driver",
    "Lost": "_protocol",
    "Reply": "_protocol",
    "Stopped": "_protocol",
    "Trained": "_protocol",
    "Placement": "_protocol",
    "WorkerSettings": "_protocol",
    "Worker": "_worker",
    "pick_device": "_worker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"groupwise.execution.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'groupwise.execution' has no attribute {name!r}")


__all__ = [
    "AUTH_ENV",
    "STOPPED",
    "Driver",
    "LaunchResult",
    "LocalHead",
    "Lost",
    "Placement",
    "Progress",
    "Reply",
    "Stopped",
    "Trained",
    "Worker",
    "WorkerSettings",
    "check_launch",
    "launch",
    "own_child",
    "pick_device",
    "unreachable",
]
