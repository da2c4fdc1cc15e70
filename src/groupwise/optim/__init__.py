"""Optimizers: the registry by name, and model + TrialConfig -> MultiOptimizer."""

from groupwise.optim._build import as_config, build_optimizer
from groupwise.optim._multi import GroupPlan, MultiOptimizer, partition_fingerprint
from groupwise.optim._registry import (
    IMPLEMENTATION_FLAGS,
    OptimizerSpec,
    ParamConstraint,
    available_optimizers,
    get_optimizer,
    register_optimizer,
)

__all__ = [
    "IMPLEMENTATION_FLAGS",
    "GroupPlan",
    "MultiOptimizer",
    "OptimizerSpec",
    "ParamConstraint",
    "as_config",
    "available_optimizers",
    "build_optimizer",
    "get_optimizer",
    "partition_fingerprint",
    "register_optimizer",
]
