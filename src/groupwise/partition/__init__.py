"""Partition schemes: model + scheme -> {label: [parameter names]}.

Pure: knows nothing of optimizers.

New schemes subclass :class:`Scheme` and join with :func:`register_scheme`.
"""

from groupwise.partition import _by_name, _depth, _role, _simple  # noqa: F401  (registration)
from groupwise.partition._base import (
    ParamInfo,
    Scheme,
    available_schemes,
    make_scheme,
    partition,
    partition_with_notes,
    register_scheme,
    scheme_options,
    trainable_parameters,
)
from groupwise.partition._role import ROLES, tensor_roles
from groupwise.partition._summary import GroupSummary, PartitionSummary, summarize

__all__ = [
    "ROLES",
    "GroupSummary",
    "ParamInfo",
    "PartitionSummary",
    "Scheme",
    "available_schemes",
    "make_scheme",
    "partition",
    "partition_with_notes",
    "register_scheme",
    "scheme_options",
    "summarize",
    "tensor_roles",
    "trainable_parameters",
]
