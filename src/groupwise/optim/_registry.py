"""The optimizer registry: one frozen record per optimizer kind, looked up by name.

A record says which torch class implements the kind, every hyperparameter that class
accepts with torch's own default (read from its signature, so it cannot drift from torch),
the ranges a search space may draw from, and the constraints it puts on parameters.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from groupwise.domains import Domain, FloatRange, TupleOf
from groupwise.errors import ConfigError, UnknownNameError
from groupwise.registry import Registry

__all__ = [
    "OptimizerInfo",
    "ParamConstraint",
    "available_optimizers",
    "get_optimizer",
    "register_optimizer",
]

# Constructor flags that choose an implementation, not the mathematics; never searched.
IMPLEMENTATION_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})


@dataclass(frozen=True)
class ParamConstraint:
    """What a parameter must satisfy to be handed to an optimizer kind."""

    description: str
    ndims: frozenset[int] | None = None  # allowed tensor ranks; None: any
    real_only: bool = False

    def violation(self, name: str, tensor: Tensor) -> str | None:
        """Why ``tensor`` breaks this constraint, or None when it fits."""
        if self.ndims is not None and tensor.ndim not in self.ndims:
            return f"{name} has shape {tuple(tensor.shape)} ({tensor.ndim}-D); {self.description}"
        if self.real_only and tensor.is_complex():
            return f"{name} is complex ({tensor.dtype}); {self.description}"
        return None


@dataclass(frozen=True)
class OptimizerInfo:
    """One optimizer kind.

    Attributes:
        name: registry name used in configs and search spaces.
        cls: the ``torch.optim.Optimizer`` subclass that implements it.
        defaults: every keyword the constructor accepts besides ``params``, with its default.
        search: the hyperparameters a search space may draw, each with its default range.
        constraints: what each parameter must satisfy (torch's Muon: 2-D tensors only).
        state: how many elements of per-parameter state the kind keeps for one tensor of a
            shape, given its settings (Adam: two buffers, SGD with momentum: one, Adafactor:
            row and column factors). A test checks each against torch after a real step.
        fixed: constructor arguments the kind pins (NAdamW is torch's NAdam with
            ``decoupled_weight_decay=True``); they are in ``defaults`` but not in ``accepts``:
            a config cannot change them.
        modes: whether the optimizer keeps train and eval modes (schedule-free methods keep
            the weights to evaluate apart from those to step); MultiOptimizer switches them.
        roles: the roles of tensor (``groupwise.partition.tensor_roles``: matrix, embedding,
            head, vector, other) a search offers this kind to; None: any it fits. Muon is
            made for hidden matrices: an embedding is a lookup table, not a linear map whose
            spectrum to orthogonalize, and the output head wants Adam's per-coordinate steps
            (Muon's authors; modded-nanogpt). A search space may widen it (``roles:``);
            ``build_optimizer`` takes any config a user writes.
    """

    name: str
    cls: type[torch.optim.Optimizer]
    defaults: Mapping[str, Any]
    search: Mapping[str, Domain]
    constraints: tuple[ParamConstraint, ...] = ()
    state: Callable[[Mapping[str, Any], tuple[int, ...]], int] = lambda settings, shape: 0
    fixed: Mapping[str, Any] = field(default_factory=dict)
    modes: bool = False
    roles: frozenset[str] | None = None

    def make(self, params: Any, **settings: Any) -> torch.optim.Optimizer:
        """The torch optimizer over ``params`` (tensors or group dicts), pinned args applied."""
        return self.cls(params, **{**self.fixed, **settings})

    def state_elements(self, settings: Mapping[str, Any], shape: tuple[int, ...]) -> int:
        """Elements of optimizer state for one tensor (``settings`` over torch's defaults)."""
        return self.state({**self.defaults, **settings}, shape)

    @property
    def accepts(self) -> tuple[str, ...]:
        return tuple(k for k in self.defaults if k not in self.fixed)

    def violations(self, named: Iterable[tuple[str, Tensor]]) -> list[str]:
        found = []
        for name, tensor in named:
            for constraint in self.constraints:
                why = constraint.violation(name, tensor)
                if why:
                    found.append(why)
        return found

    def fits(self, tensors: Iterable[Tensor]) -> bool:
        return not self.violations((f"#{i}", t) for i, t in enumerate(tensors))


OPTIMIZERS: Registry[OptimizerInfo] = Registry("optimizer")


def register_optimizer(info: OptimizerInfo) -> OptimizerInfo:
    """Add an optimizer kind; every test parametrized over the registry then covers it."""
    unknown = sorted(set(info.search) - set(info.defaults))
    if unknown:
        raise ValueError(f"optimizer {info.name!r}: search ranges for unknown keys {unknown}")
    return OPTIMIZERS.add(info.name, info)


def get_optimizer(name: str, where: str = "") -> OptimizerInfo:
    """The registry record of ``name``; an optional kind is loaded on first use (its package
    is imported then, not when groupwise is)."""
    if name not in OPTIMIZERS and name in _OPTIONAL:
        return _load_optional(name, where)
    try:
        return OPTIMIZERS.get(name, where)
    except UnknownNameError as e:
        raise UnknownNameError("optimizer", name, available_optimizers(), where) from e


def available_optimizers() -> list[str]:
    """Every kind by name, the optional ones too (installed or not)."""
    return sorted({*OPTIMIZERS.names(), *_OPTIONAL})


@dataclass(frozen=True)
class _Optional:
    """A kind from an optional package, built into an OptimizerInfo when first asked for."""

    module: str  # imported on first use
    attr: str
    package: str  # what pip installs
    make: Callable[[str, type[torch.optim.Optimizer]], OptimizerInfo]


_OPTIONAL: dict[str, _Optional] = {}
EXTRA = "optimizers"  # pip install "groupwise[optimizers]"


def _load_optional(name: str, where: str) -> OptimizerInfo:
    entry = _OPTIONAL[name]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as e:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}optimizer {name!r} comes from the optional package {entry.package!r}, "
            f'which is not installed: pip install "groupwise[{EXTRA}]"'
        ) from e
    return register_optimizer(entry.make(name, getattr(module, entry.attr)))


def torch_defaults(cls: type[torch.optim.Optimizer]) -> dict[str, Any]:
    """Every constructor keyword but ``params``, with its default, read from the class itself."""
    signature = inspect.signature(cls.__init__)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.name not in ("self", "params") and p.default is not inspect.Parameter.empty
    }


def _make_info(
    name: str,
    cls: type[torch.optim.Optimizer],
    search: Mapping[str, Domain],
    state: Callable[[Mapping[str, Any], tuple[int, ...]], int],
    constraints: tuple[ParamConstraint, ...] = (),
    fixed: Mapping[str, Any] | None = None,
    modes: bool = False,
) -> OptimizerInfo:
    """The registry record of a torch optimizer class: its defaults read from the class."""
    defaults = {**torch_defaults(cls), **(fixed or {})}
    return OptimizerInfo(
        name, cls, defaults, dict(search), constraints, state, dict(fixed or {}), modes
    )


def _builtin(
    name: str,
    cls: type[torch.optim.Optimizer],
    search: Mapping[str, Domain],
    state: Callable[[Mapping[str, Any], tuple[int, ...]], int],
    constraints: tuple[ParamConstraint, ...] = (),
    fixed: Mapping[str, Any] | None = None,
    roles: frozenset[str] | None = None,
) -> OptimizerInfo:
    """Register one of the optimizers groupwise ships with."""
    info = _make_info(name, cls, search, state, constraints, fixed)
    return register_optimizer(dataclasses.replace(info, roles=roles))


def _buffers(count: int) -> Callable[[Mapping[str, Any], tuple[int, ...]], int]:
    """``count`` parameter-sized buffers (scalars such as ``step`` are not counted)."""
    return lambda settings, shape: count * math.prod(shape)


def _adam_state(settings: Mapping[str, Any], shape: tuple[int, ...]) -> int:
    return (3 if settings.get("amsgrad") else 2) * math.prod(shape)


def _sgd_state(settings: Mapping[str, Any], shape: tuple[int, ...]) -> int:
    return math.prod(shape) if settings.get("momentum") else 0


def _rmsprop_state(settings: Mapping[str, Any], shape: tuple[int, ...]) -> int:
    buffers = 1 + bool(settings.get("momentum")) + bool(settings.get("centered"))
    return buffers * math.prod(shape)


def _adafactor_state(settings: Mapping[str, Any], shape: tuple[int, ...]) -> int:
    if len(shape) < 2:
        return math.prod(shape)
    return math.prod(shape[:-2]) * (shape[-2] + shape[-1])  # row and column factors


# Default ranges: wide enough to contain the usual good values, narrow enough that a few dozen
# trials find them. Learning rates and weight decay on a log scale; weight decay never 0 on a
# log scale, so its floor 1e-6 is "effectively none".
_WD = FloatRange(1e-6, 0.3, log=True)
_BETAS = TupleOf((FloatRange(0.8, 0.95), FloatRange(0.95, 0.9999)))
_ADAM_LIKE: dict[str, Domain] = {
    "lr": FloatRange(1e-5, 1e-1, log=True),
    "weight_decay": _WD,
    "betas": _BETAS,
}

_builtin(
    "sgd",
    torch.optim.SGD,
    {
        "lr": FloatRange(1e-4, 1.0, log=True),
        "momentum": FloatRange(0.0, 0.99),
        "weight_decay": _WD,
    },
    _sgd_state,
)
_builtin("adam", torch.optim.Adam, _ADAM_LIKE, _adam_state)
_builtin("adamw", torch.optim.AdamW, _ADAM_LIKE, _adam_state)
_builtin("nadam", torch.optim.NAdam, _ADAM_LIKE, _buffers(2))
# NAdamW: NAdam with AdamW's decoupled weight decay, one of the AlgoPerf baselines.
_builtin(
    "nadamw", torch.optim.NAdam, _ADAM_LIKE, _buffers(2), fixed={"decoupled_weight_decay": True}
)
_builtin("radam", torch.optim.RAdam, _ADAM_LIKE, _buffers(2))
_builtin("adamax", torch.optim.Adamax, _ADAM_LIKE, _buffers(2))
_builtin(
    "rmsprop",
    torch.optim.RMSprop,
    {
        "lr": FloatRange(1e-5, 1e-1, log=True),
        "alpha": FloatRange(0.9, 0.999),
        "momentum": FloatRange(0.0, 0.95),
        "weight_decay": _WD,
    },
    _rmsprop_state,
)
_builtin(
    "adagrad",
    torch.optim.Adagrad,
    {
        "lr": FloatRange(1e-4, 1.0, log=True),
        "weight_decay": _WD,
    },
    _buffers(1),
)
_builtin(
    "adadelta",
    torch.optim.Adadelta,
    {
        "lr": FloatRange(1e-2, 10.0, log=True),
        "rho": FloatRange(0.8, 0.99),
        "weight_decay": _WD,
    },
    _buffers(2),
)
_builtin(
    "adafactor",
    torch.optim.Adafactor,
    {
        "lr": FloatRange(1e-4, 1e-1, log=True),
        "beta2_decay": FloatRange(-1.0, -0.5),
        "weight_decay": _WD,
    },
    _adafactor_state,
)
_builtin(
    "asgd",
    torch.optim.ASGD,
    {
        "lr": FloatRange(1e-4, 1.0, log=True),
        "weight_decay": _WD,
    },
    _buffers(1),
)
_builtin("rprop", torch.optim.Rprop, {"lr": FloatRange(1e-4, 1e-1, log=True)}, _buffers(2))
_builtin(
    "muon",
    torch.optim.Muon,
    {
        "lr": FloatRange(1e-4, 1e-1, log=True),
        "momentum": FloatRange(0.8, 0.99),
        "weight_decay": _WD,
    },
    _buffers(1),
    constraints=(
        ParamConstraint(
            "torch.optim.Muon takes 2-D tensors only; give this tensor an Adam-family "
            "optimizer (the 'role' scheme separates matrices from vectors and embeddings)",
            ndims=frozenset({2}),
            real_only=True,
        ),
    ),
    roles=frozenset({"matrix"}),
)


# -- optional kinds: pip install "groupwise[optimizers]" -----------------------------------------
# The AlgoPerf leaders and their relatives. Ranges follow each method's paper and the
# package's defaults: Lion wants an lr 3-10x below AdamW's; Prodigy estimates its own step
# size, so its lr is a multiplier around 1; schedule-free AdamW takes a larger lr than AdamW.
def _soap_state(settings: Mapping[str, Any], shape: tuple[int, ...]) -> int:
    """Adam's two buffers, plus a Kronecker factor and its eigenbasis per preconditioned dim."""
    n = math.prod(shape)
    if len(shape) < 2 and not settings.get("precondition_1d"):
        return 2 * n
    limit = int(settings.get("max_precondition_dim", 10000))
    return 2 * n + 2 * sum(d * d for d in shape if d <= limit)


def _optional(
    name: str,
    module: str,
    attr: str,
    package: str,
    search: Mapping[str, Domain],
    state: Callable[[Mapping[str, Any], tuple[int, ...]], int],
    modes: bool = False,
) -> None:
    def make(kind: str, cls: type[torch.optim.Optimizer]) -> OptimizerInfo:
        info = _make_info(kind, cls, search, state, modes=modes)
        # Only what the class keeps per param group can differ between groups; constructor-only
        # arguments (pytorch-optimizer's maximize, foreach) are left at their defaults.
        per_group = cls([torch.zeros(2, 2, requires_grad=True)]).defaults  # type: ignore[call-arg]
        defaults = {k: v for k, v in info.defaults.items() if k in per_group}
        return dataclasses.replace(info, defaults=defaults)

    _OPTIONAL[name] = _Optional(module, attr, package, make)


_optional(
    "sfadamw",
    "schedulefree",
    "AdamWScheduleFree",
    "schedulefree",
    {"lr": FloatRange(1e-4, 1e-1, log=True), "weight_decay": _WD, "betas": _BETAS},
    _buffers(2),
    modes=True,
)
_optional(
    "lion",
    "pytorch_optimizer",
    "Lion",
    "pytorch-optimizer",
    {"lr": FloatRange(1e-6, 1e-2, log=True), "weight_decay": _WD, "betas": _BETAS},
    _buffers(1),
)
_optional(
    "soap",
    "pytorch_optimizer",
    "SOAP",
    "pytorch-optimizer",
    {"lr": FloatRange(1e-4, 3e-2, log=True), "weight_decay": _WD},
    _soap_state,
)
_optional(
    "prodigy",
    "pytorch_optimizer",
    "Prodigy",
    "pytorch-optimizer",
    {"lr": FloatRange(0.1, 10.0, log=True), "weight_decay": _WD},
    _buffers(4),
)
