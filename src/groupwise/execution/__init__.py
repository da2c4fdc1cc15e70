"""Execution: the driver (the only writer to storage) and its Ray worker actors."""

from groupwise.execution._driver import LaunchResult, Prepared, Progress, launch, prepare
from groupwise.execution._worker import Worker, pick_device

__all__ = ["LaunchResult", "Prepared", "Progress", "Worker", "launch", "pick_device", "prepare"]
