"""groupwise: search how a PyTorch model's parameters are split into optimizer groups.

Public API (stable):

- :func:`partition` -- model + scheme -> {label: [parameter names]}
- :func:`build_optimizer` -- model + config -> :class:`MultiOptimizer`
- :class:`MultiOptimizer` -- a ``torch.optim.Optimizer`` over several optimizer kinds
- :class:`TrialConfig` -- the config record and export format
"""

from groupwise import errors
from groupwise.config import GroupConfig, SchemeChoice, TrialConfig
from groupwise.optim import (
    MultiOptimizer,
    OptimizerSpec,
    available_optimizers,
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

__version__ = "0.1.0"

__all__ = [
    "GroupConfig",
    "MultiOptimizer",
    "OptimizerSpec",
    "Scheme",
    "SchemeChoice",
    "TrialConfig",
    "__version__",
    "available_optimizers",
    "available_schemes",
    "build_optimizer",
    "errors",
    "get_optimizer",
    "partition",
    "register_optimizer",
    "register_scheme",
    "summarize",
]
