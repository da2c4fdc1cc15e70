"""Function tasks: ``task: {train: "package.module:function"}`` names the user's own training
function, ``train(trial) -> None | float``, which builds its model and data and trains however
it likes (a loop, Lightning, the HF Trainer), reporting through ``trial``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from groupwise.errors import TaskError
from groupwise.tasks._base import reference

__all__ = ["TrainFunction", "resolve_function"]

TrainFunction = Callable[[Any], "float | None"]

SHAPE = "def train(trial: groupwise.Trial) -> None | float"


def resolve_function(ref: str) -> TrainFunction:
    """The function a ``train:`` reference names, checked to take one argument (the trial);
    nothing of it runs. Raises TaskError naming the reference and the shape it needs."""
    if ":" not in ref:
        raise TaskError(
            f"task.train {ref!r}: name the function as 'package.module:function' or "
            f"'path/to/file.py:function' ({SHAPE})"
        )
    function = reference(ref, what="task.train")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise TaskError(f"task.train {ref!r} is not a function: {SHAPE}") from None
    try:
        signature.bind(object())
    except TypeError:
        params = ", ".join(signature.parameters) or "none"
        raise TaskError(
            f"task.train {ref!r} must take one argument, the trial ({SHAPE}); it takes ({params})"
        ) from None
    return function
