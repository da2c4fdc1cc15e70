"""The partition contract, the scheme registry, and the checks every scheme passes through.

A scheme only labels parameters. It never sees optimizers, and the guarantees users rely on
(every trainable parameter exactly once, tied parameters once under their first name, frozen
parameters nowhere, no empty labels) are enforced here, for built-in and user schemes alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from torch import Tensor, nn

from groupwise.config import SchemeChoice
from groupwise.errors import PartitionError, format_names
from groupwise.registry import Registry, accepted_options, check_options

__all__ = [
    "ParamInfo",
    "Scheme",
    "available_schemes",
    "make_scheme",
    "partition",
    "partition_with_notes",
    "register_scheme",
    "trainable_parameters",
]


@dataclass(frozen=True)
class ParamInfo:
    """One trainable parameter, under its first name, with the module that registers it."""

    name: str
    param: Tensor
    owner: nn.Module
    owner_name: str  # "" when registered directly on the root module
    top: str  # the top-level child that holds it; "" for the root module's own parameters

    @property
    def ndim(self) -> int:
        return self.param.ndim

    @property
    def numel(self) -> int:
        return self.param.numel()


def trainable_parameters(model: nn.Module) -> list[ParamInfo]:
    """Trainable parameters in ``named_parameters()`` order, each tied tensor once."""
    if not isinstance(model, nn.Module):
        raise PartitionError(
            f"partition needs a torch.nn.Module; got {type(model).__name__}. "
            "Pass the model itself, not model.parameters()"
        )
    infos = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if isinstance(param, nn.parameter.UninitializedParameter):
            raise PartitionError(
                f"parameter {name!r} is uninitialized (a lazy module such as nn.LazyLinear); "
                "run one forward pass on a sample batch first, then partition or build the "
                "optimizer (a groupwise task's model is materialized so for you)"
            )
        owner_name, _, _ = name.rpartition(".")
        infos.append(
            ParamInfo(
                name=name,
                param=param,
                owner=model.get_submodule(owner_name),
                owner_name=owner_name,
                top=name.split(".", 1)[0] if owner_name else "",
            )
        )
    return infos


class Scheme(ABC):
    """A rule that labels a model's trainable parameters.

    Subclasses set ``name`` and take their options as keyword-only ``__init__`` arguments,
    validating them there and raising :class:`~groupwise.errors.PartitionError` with the
    option, the value and what is allowed. ``labels`` lists the labels in the order they
    are reported; schemes whose labels depend on options override :meth:`label_order`.

    Contract of :meth:`assign`: return label -> parameter names, using exactly the names in
    ``params``. It may leave labels empty; it must not drop or repeat a parameter (the
    caller checks and raises if it does).
    """

    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]: ...

    def label_order(self) -> tuple[str, ...]:
        return self.labels

    def notes(
        self, model: nn.Module, params: Sequence[ParamInfo], groups: Mapping[str, Sequence[str]]
    ) -> list[str]:
        """What a user should hear about this split of this model: an option that did
        nothing, a choice made for want of information. Empty by default."""
        return []


SCHEMES: Registry[type[Scheme]] = Registry("partition scheme")
S = TypeVar("S", bound=type[Scheme])


def register_scheme(cls: S) -> S:
    """Class decorator: make a scheme available by its ``name`` everywhere (configs, search)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    SCHEMES.add(name, cls)
    return cls


def available_schemes() -> list[str]:
    return SCHEMES.names()


def scheme_options(name: str) -> list[str]:
    """The option names a registered scheme accepts."""
    return accepted_options(SCHEMES.get(name).__init__, keyword_only=True) or []


def make_scheme(scheme: str | Mapping[str, Any] | SchemeChoice, **options: Any) -> Scheme:
    """Instantiate a registered scheme, checking option names before the scheme checks values."""
    choice = SchemeChoice.from_data(scheme)
    merged = {**choice.options, **options}
    cls = SCHEMES.get(choice.name)
    check_options("scheme", choice.name, merged, scheme_options(choice.name), PartitionError)
    return cls(**merged)


def partition(
    model: nn.Module, scheme: str | Mapping[str, Any] | SchemeChoice = "single", **options: Any
) -> dict[str, list[str]]:
    """Split ``model``'s trainable parameters into labelled groups.

    Args:
        model: the module whose parameters are split.
        scheme: a registered scheme name (``single``, ``module_type``, ``decay_split``,
            ``role``, ``depth``, ``by_name``, or one added with :func:`register_scheme`), a
            mapping such as ``{"name": "depth", "blocks": 3}``, or a ``SchemeChoice``.
        **options: the scheme's options (they override those given in ``scheme``).

    Returns:
        label -> parameter names as ``model.named_parameters()`` gives them, labels in the
        scheme's order. Every trainable parameter appears exactly once, a tied parameter
        once under its first name, frozen parameters nowhere; empty labels are left out.

    Raises:
        UnknownNameError: the scheme is not registered.
        PartitionError: an option is unknown or its value does not fit this model.
    """
    return partition_with_notes(model, scheme, **options)[0]


def partition_with_notes(
    model: nn.Module, scheme: str | Mapping[str, Any] | SchemeChoice = "single", **options: Any
) -> tuple[dict[str, list[str]], list[str]]:
    """:func:`partition`, and what the scheme has to say of this split (:meth:`Scheme.notes`):
    an option that did nothing on this model, a choice made for want of information."""
    rule = make_scheme(scheme, **options)
    params = trainable_parameters(model)
    if not params:
        raise PartitionError(
            f"{type(model).__name__} has no trainable parameters (all frozen or none); "
            "nothing to optimize"
        )
    groups = _checked(rule, rule.assign(model, params), params)
    return groups, rule.notes(model, params, groups)


def _checked(
    rule: Scheme, raw: Mapping[str, Sequence[str]], params: Sequence[ParamInfo]
) -> dict[str, list[str]]:
    expected = [p.name for p in params]
    seen: dict[str, str] = {}
    for label, names in raw.items():
        for name in names:
            if name in seen:
                raise PartitionError(
                    f"scheme {rule.name!r} put parameter {name!r} in both "
                    f"{seen[name]!r} and {label!r}; a scheme must label each parameter once"
                )
            seen[name] = label
    missing = [n for n in expected if n not in seen]
    extra = [n for n in seen if n not in set(expected)]
    if missing or extra:
        raise PartitionError(
            f"scheme {rule.name!r} must label every trainable parameter exactly once: "
            f"unlabelled {format_names(missing)}, not trainable or unknown {format_names(extra)}"
        )
    order = {name: i for i, name in enumerate(expected)}
    labels = [*rule.label_order(), *(label for label in raw if label not in rule.label_order())]
    return {label: sorted(raw[label], key=order.__getitem__) for label in labels if raw.get(label)}


def assign_by(
    params: Sequence[ParamInfo], rule: Callable[[ParamInfo], str]
) -> dict[str, list[str]]:
    """label -> names for schemes that label each parameter on its own."""
    groups: dict[str, list[str]] = {}
    for info in params:
        groups.setdefault(rule(info), []).append(info.name)
    return groups


def iter_modules_of(model: nn.Module, kind: type[nn.Module]) -> Iterator[tuple[str, nn.Module]]:
    return ((name, m) for name, m in model.named_modules() if isinstance(m, kind))
