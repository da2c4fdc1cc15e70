"""Tune small, transfer big: a config searched on a narrow proxy, carried to a wider model.

- :func:`transfer` -- config + proxy model + target model + rule -> the target's config
- :func:`plan_transfer` -- the same, with each tensor's multiplier and the notes
- :func:`transfer_to_task` -- a study's config carried to its task at other options
- :func:`coord_check` -- each layer's output scale across widths after a few steps
- ``RULES`` (``sp-per-layer``, ``mup``, ``none``), :func:`register_family`
"""

from groupwise.transfer._check import TransferCheck, best_checked, check_transfer, one_target
from groupwise.transfer._coord import FLAT, CoordCheck, coord_check
from groupwise.transfer._plot import plot_coord_check
from groupwise.transfer._rules import FAMILIES, RULES, family_of, register_family
from groupwise.transfer._shapes import KINDS, TensorWidth, tensor_widths
from groupwise.transfer._tasks import carried, named, target_task, task_model, transfer_to_task
from groupwise.transfer._transfer import TensorScale, Transferred, plan_transfer, transfer

__all__ = [
    "FAMILIES",
    "FLAT",
    "KINDS",
    "RULES",
    "CoordCheck",
    "TensorScale",
    "TensorWidth",
    "TransferCheck",
    "Transferred",
    "best_checked",
    "carried",
    "check_transfer",
    "coord_check",
    "family_of",
    "named",
    "one_target",
    "plan_transfer",
    "plot_coord_check",
    "register_family",
    "target_task",
    "task_model",
    "tensor_widths",
    "transfer",
    "transfer_to_task",
]
