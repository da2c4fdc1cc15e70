"""Tune small, transfer big: a config searched on a narrow proxy, carried to a wider model.

- :func:`transfer` -- config + proxy model + target model + rule -> the target's config
- :func:`plan_transfer` -- the same, with each tensor's multiplier and the notes
- :func:`transfer_to_task` -- a study's config carried to its task at other options
- ``RULES`` (``sp-per-layer``, ``mup``, ``none``), :func:`register_family`
"""

from groupwise.transfer._rules import FAMILIES, RULES, register_family
from groupwise.transfer._shapes import KINDS, TensorWidth, tensor_widths
from groupwise.transfer._tasks import carried, target_task, task_model, transfer_to_task
from groupwise.transfer._transfer import TensorScale, Transferred, plan_transfer, transfer

__all__ = [
    "FAMILIES",
    "KINDS",
    "RULES",
    "TensorScale",
    "TensorWidth",
    "Transferred",
    "carried",
    "plan_transfer",
    "register_family",
    "target_task",
    "task_model",
    "tensor_widths",
    "transfer",
    "transfer_to_task",
]
