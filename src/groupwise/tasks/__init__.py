"""Tasks: a registry name or "package.module:function" -> Task.

A Task holds a model factory, the data splits, the loss and the validation metrics.
"""

from groupwise.tasks import _digits, _tabular, _text  # noqa: F401  (registration)
from groupwise.tasks._base import (
    Batches,
    Task,
    available_tasks,
    raised_at,
    register_task,
    resolve_task,
)
from groupwise.tasks._data import TensorSplits, TokenWindows

__all__ = [
    "Batches",
    "Task",
    "TensorSplits",
    "TokenWindows",
    "available_tasks",
    "raised_at",
    "register_task",
    "resolve_task",
]
