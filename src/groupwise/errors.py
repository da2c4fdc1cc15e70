"""The exceptions groupwise raises.

Every message names the thing that is wrong, the value it got, and what would be accepted,
so the CLI can print it as one line and a library user can act on it without reading code.
All of them derive from :class:`GroupwiseError`; the ones caused by bad input also derive
from :class:`ValueError`, so code that already catches ``ValueError`` keeps working.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable

__all__ = [
    "CheckpointMismatchError",
    "ConfigError",
    "ConstraintError",
    "GroupwiseError",
    "LabelMismatchError",
    "PartitionError",
    "SpecError",
    "StudyError",
    "TaskError",
    "UnknownNameError",
    "format_names",
    "quote",
]


class GroupwiseError(Exception):
    """Base class of every error groupwise raises on purpose."""


class ConfigError(GroupwiseError, ValueError):
    """A config (dict, TrialConfig or file) is malformed or holds a value out of range."""


class UnknownNameError(ConfigError):
    """A name that must come from a registry (scheme, optimizer, hyperparameter) is not in it."""

    def __init__(self, kind: str, got: str, choices: Iterable[str], where: str = "") -> None:
        self.kind = kind
        self.got = got
        self.choices = sorted(choices)
        super().__init__(_unknown_message(kind, got, self.choices, where))


class PartitionError(GroupwiseError, ValueError):
    """A partition scheme cannot split this model with these options."""


class LabelMismatchError(ConfigError):
    """The config's group labels and the partition's labels differ."""


class ConstraintError(ConfigError):
    """An optimizer was given a parameter it cannot handle (e.g. Muon and a non-2-D tensor)."""


class CheckpointMismatchError(GroupwiseError, ValueError):
    """A MultiOptimizer state dict was saved for another partition or other optimizers."""


class SpecError(GroupwiseError, ValueError):
    """A study or search-space file is invalid; the message names the file and the key."""


class TaskError(GroupwiseError, ValueError):
    """A task name or ``module:function`` reference cannot be resolved, or builds no valid task."""


class StudyError(GroupwiseError):
    """A study cannot be run or read: unknown study name, storage unreachable, and the like."""


def _unknown_message(kind: str, got: str, choices: list[str], where: str) -> str:
    prefix = f"{where}: " if where else ""
    hint = difflib.get_close_matches(str(got), choices, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    listed = ", ".join(choices)
    return f"{prefix}unknown {kind} {got!r}{suggestion}; must be one of [{listed}]"


def one_line(message: object) -> str:
    """An error as the one line the CLI prints and the service answers: line breaks (a user's
    exception can hold some, quoted into ours) become `` | ``, blank lines go."""
    lines = [line.strip() for line in str(message).splitlines()]
    return " | ".join(line for line in lines if line)


def quote(value: object, limit: int = 120) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters and to a few levels and
    items (a value built from YAML aliases can hold billions of items)."""
    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxlist, shortener.maxdict = 3, 6, 6
    shortener.maxstring, shortener.maxother = limit, limit
    text = shortener.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_names(names: Iterable[str], limit: int = 8) -> str:
    """``[a, b, c, ... (+n more)]``: a bounded list for error messages."""
    items = list(names)
    shown = ", ".join(items[:limit])
    more = f", ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}{more}]"


class TrialPruned(Exception):  # noqa: N818  (Optuna's name, which users know)
    """Raised by ``trial.report`` in a function task when the study's pruner stops the trial
    (or the study no longer wants it): let it propagate, and groupwise records the trial as
    PRUNED. Not a GroupwiseError: it is control flow, not a mistake."""
