"""Execution: the driver loop, the Ray worker pool (the only module importing Ray), and the
worker that trains one epoch per call. The ledger in ``groupwise.store`` records it all."""

from groupwise.execution._driver import Driver, Progress
from groupwise.execution._launch import LaunchResult, launch
from groupwise.execution._protocol import Lost, Reply, Stopped, Trained, Where, WorkerSettings
from groupwise.execution._worker import Worker, pick_device

__all__ = [
    "Driver",
    "LaunchResult",
    "Lost",
    "Progress",
    "Reply",
    "Stopped",
    "Trained",
    "Where",
    "Worker",
    "WorkerSettings",
    "launch",
    "pick_device",
]
