"""Tasks: a registry name or "package.module:function" -> Task; a ``train:`` reference -> the
user's own training function (a function task).

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
    user_frame,
)
from groupwise.tasks._data import TensorSplits, TokenWindows
from groupwise.tasks._function import TrainFunction, resolve_function

__all__ = [
    "Batches",
    "Task",
    "TensorSplits",
    "TokenWindows",
    "TrainFunction",
    "available_tasks",
    "raised_at",
    "register_task",
    "resolve_function",
    "resolve_task",
    "user_frame",
]
