"""groupwise: search how a PyTorch model's parameters are split into optimizer groups.

Public API (stable):

- :func:`partition` -- model + scheme -> {label: [parameter names]}
- :func:`build_optimizer` -- model + config -> :class:`MultiOptimizer`
- :class:`MultiOptimizer` -- a ``torch.optim.Optimizer`` over several optimizer kinds
- :class:`TrialConfig` -- the config record and export format
- :func:`load_best` -- a finished study's best TrialConfig
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


def load_best(study_name: str, storage: str | None = None) -> TrialConfig:
    """The best TrialConfig of a study; ``build_optimizer(model, load_best(...))`` rebuilds it.

    ``storage`` defaults to ``$GROUPWISE_STORAGE`` or ``sqlite:///groupwise.db``.
    """
    from groupwise.analysis import load_best as best  # Optuna loads only when asked

    return best(study_name, storage)


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
    "load_best",
    "partition",
    "register_optimizer",
    "register_scheme",
    "summarize",
]
