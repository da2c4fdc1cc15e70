"""The optimizer registry: one frozen record per optimizer kind, looked up by name.

A record says which torch class implements the kind, every hyperparameter that class
accepts with torch's own default (read from its signature, so it cannot drift from torch),
the ranges a search space may draw from, and the constraints it puts on parameters.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from groupwise.domains import Domain, FloatRange, TupleOf
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
    """

    name: str
    cls: type[torch.optim.Optimizer]
    defaults: Mapping[str, Any]
    search: Mapping[str, Domain]
    constraints: tuple[ParamConstraint, ...] = ()
    state: Callable[[Mapping[str, Any], tuple[int, ...]], int] = lambda settings, shape: 0

    def state_elements(self, settings: Mapping[str, Any], shape: tuple[int, ...]) -> int:
        """Elements of optimizer state for one tensor (``settings`` over torch's defaults)."""
        return self.state({**self.defaults, **settings}, shape)

    @property
    def accepts(self) -> tuple[str, ...]:
        return tuple(self.defaults)

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


def register_optimizer(spec: OptimizerInfo) -> OptimizerInfo:
    """Add an optimizer kind; every test parametrized over the registry then covers it."""
    unknown = sorted(set(spec.search) - set(spec.defaults))
    if unknown:
        raise ValueError(f"optimizer {spec.name!r}: search ranges for unknown keys {unknown}")
    return OPTIMIZERS.add(spec.name, spec)


def get_optimizer(name: str, where: str = "") -> OptimizerInfo:
    return OPTIMIZERS.get(name, where)


def available_optimizers() -> list[str]:
    return OPTIMIZERS.names()


def torch_defaults(cls: type[torch.optim.Optimizer]) -> dict[str, Any]:
    """Every constructor keyword but ``params``, with its default, read from torch itself."""
    signature = inspect.signature(cls.__init__)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.name not in ("self", "params") and p.default is not inspect.Parameter.empty
    }


def _spec(
    name: str,
    cls: type[torch.optim.Optimizer],
    search: Mapping[str, Domain],
    state: Callable[[Mapping[str, Any], tuple[int, ...]], int],
    constraints: tuple[ParamConstraint, ...] = (),
) -> OptimizerInfo:
    return register_optimizer(
        OptimizerInfo(name, cls, torch_defaults(cls), dict(search), constraints, state)
    )


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

_spec(
    "sgd",
    torch.optim.SGD,
    {
        "lr": FloatRange(1e-4, 1.0, log=True),
        "momentum": FloatRange(0.0, 0.99),
        "weight_decay": _WD,
    },
    _sgd_state,
)
_spec("adam", torch.optim.Adam, _ADAM_LIKE, _adam_state)
_spec("adamw", torch.optim.AdamW, _ADAM_LIKE, _adam_state)
_spec("nadam", torch.optim.NAdam, _ADAM_LIKE, _buffers(2))
_spec("radam", torch.optim.RAdam, _ADAM_LIKE, _buffers(2))
_spec("adamax", torch.optim.Adamax, _ADAM_LIKE, _buffers(2))
_spec(
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
_spec(
    "adagrad",
    torch.optim.Adagrad,
    {
        "lr": FloatRange(1e-4, 1.0, log=True),
        "weight_decay": _WD,
    },
    _buffers(1),
)
_spec(
    "adadelta",
    torch.optim.Adadelta,
    {
        "lr": FloatRange(1e-2, 10.0, log=True),
        "rho": FloatRange(0.8, 0.99),
        "weight_decay": _WD,
    },
    _buffers(2),
)
_spec(
    "adafactor",
    torch.optim.Adafactor,
    {
        "lr": FloatRange(1e-4, 1e-1, log=True),
        "beta2_decay": FloatRange(-1.0, -0.5),
        "weight_decay": _WD,
    },
    _adafactor_state,
)
_spec(
    "asgd",
    torch.optim.ASGD,
    {
        "lr": FloatRange(1e-4, 1.0, log=True),
        "weight_decay": _WD,
    },
    _buffers(1),
)
_spec("rprop", torch.optim.Rprop, {"lr": FloatRange(1e-4, 1e-1, log=True)}, _buffers(2))
_spec(
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
)
