"""Optimizers: the registry by name, and model + TrialConfig -> MultiOptimizer (and the lr
scheduler of the config's schedule)."""

from groupwise.optim._batched import (
    BATCHED_KINDS,
    BatchedOptimizer,
    per_candidate,
    unbatchable,
)
from groupwise.optim._build import as_config, build, build_optimizer
from groupwise.optim._checks import GroupPlan, check_group
from groupwise.optim._multi import MultiOptimizer, partition_fingerprint
from groupwise.optim._registry import (
    IMPLEMENTATION_FLAGS,
    OptimizerInfo,
    ParamConstraint,
    available_optimizers,
    get_optimizer,
    register_optimizer,
)

__all__ = [
    "BATCHED_KINDS",
    "IMPLEMENTATION_FLAGS",
    "BatchedOptimizer",
    "GroupPlan",
    "MultiOptimizer",
    "OptimizerInfo",
    "ParamConstraint",
    "as_config",
    "available_optimizers",
    "build",
    "build_optimizer",
    "check_group",
    "get_optimizer",
    "partition_fingerprint",
    "per_candidate",
    "register_optimizer",
    "unbatchable",
]
