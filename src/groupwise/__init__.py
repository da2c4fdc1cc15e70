"""groupwise: search how a PyTorch model's parameters are split into optimizer groups.

Public API (stable):

- :func:`partition` -- model + scheme -> {label: [parameter names]}
- :func:`build_optimizer` -- model + config -> :class:`MultiOptimizer`
- :func:`build` -- model + config + total steps -> (optimizer, lr scheduler of its schedule)
- :class:`MultiOptimizer` -- a ``torch.optim.Optimizer`` over several optimizer kinds
- :class:`TrialConfig` -- the config record and export format
- :func:`load_best` -- a finished study's best TrialConfig
- :func:`transfer` -- a config searched on a narrow proxy model, carried to a wider one
- :class:`Trial`, :class:`TrialPruned` -- what a function task's ``train(trial)`` gets (its
  config, ``build`` and ``report``), and what ``report`` raises when the study prunes it

Names load on first use (PEP 562), so ``import groupwise.errors`` or ``groupwise --help``
does not import torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from groupwise import errors
from groupwise.errors import TrialPruned

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

if TYPE_CHECKING:
    from groupwise.config import GroupConfig, Schedule, SchemeChoice, TrialConfig
    from groupwise.optim import (
        MultiOptimizer,
        OptimizerInfo,
        available_optimizers,
        build,
        build_optimizer,
        get_optimizer,
        register_optimizer,
    )
    from groupwise.partition import (
        Scheme,
        available_schemes,
        partition,
        register_scheme,
        summarize,
    )
    from groupwise.training import Trial
    from groupwise.transfer import transfer

_LAZY = {
    "GroupConfig": "groupwise.config",
    "Schedule": "groupwise.config",
    "SchemeChoice": "groupwise.config",
    "TrialConfig": "groupwise.config",
    "MultiOptimizer": "groupwise.optim",
    "OptimizerInfo": "groupwise.optim",
    "available_optimizers": "groupwise.optim",
    "build": "groupwise.optim",
    "build_optimizer": "groupwise.optim",
    "get_optimizer": "groupwise.optim",
    "register_optimizer": "groupwise.optim",
    "Scheme": "groupwise.partition",
    "available_schemes": "groupwise.partition",
    "partition": "groupwise.partition",
    "register_scheme": "groupwise.partition",
    "summarize": "groupwise.partition",
    "Trial": "groupwise.training",
    "transfer": "groupwise.transfer",
}


_FUNCTIONS = ("partition", "transfer")  # public functions named as their subpackages


class _Package(types.ModuleType):
    """``groupwise.partition`` and ``groupwise.transfer`` are public functions. Python sets a
    package's attribute to each subpackage it loads, which would replace the function with
    the subpackage of its name the first time anything imports it; this keeps the function
    (the subpackage stays importable through ``sys.modules``, as ``from groupwise.partition
    import ...``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once loaded, an ordinary attribute
        return value
    raise AttributeError(f"module 'groupwise' has no attribute {name!r}")


def load_best(study_name: str, storage: str | None = None) -> TrialConfig:
    """The best TrialConfig of a study (the confirmed leader, where it confirmed its leaders);
    ``build(model, load_best(...), total_steps=N)`` rebuilds its optimizer and scheduler
    (``build_optimizer`` for a config searched without a schedule).

    ``storage`` defaults to ``$GROUPWISE_STORAGE`` or ``sqlite:///groupwise.db``.
    """
    from groupwise.analysis import load_best as best  # Optuna loads only when asked

    return best(study_name, storage)


__all__ = [
    "GroupConfig",
    "MultiOptimizer",
    "OptimizerInfo",
    "Schedule",
    "Scheme",
    "SchemeChoice",
    "Trial",
    "TrialConfig",
    "TrialPruned",
    "__version__",
    "available_optimizers",
    "available_schemes",
    "build",
    "build_optimizer",
    "errors",
    "get_optimizer",
    "load_best",
    "partition",
    "register_optimizer",
    "register_scheme",
    "summarize",
    "transfer",
]
