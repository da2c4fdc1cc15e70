"""The search-space file: which partition schemes to explore, which optimizers with which
ranges, and how groups share choices.

    schemes:
      - module_type
      - {name: depth, blocks: {low: 2, high: 4}}
    optimizers:
      adamw: {}                                   # the registry's default ranges
      sgd:
        lr: {low: 1.0e-3, high: 1.0, log: true}   # given keys are exactly what is searched
        momentum: 0.9                             # a fixed value
    sharing:
      optimizer: per_group        # or shared: one optimizer kind for every group
      lr: per_group               # or shared, or layerwise (depth: one lr and a decay factor)
      hyperparameters: per_group  # or shared: every setting but lr
      max_groups: 6               # schemes that would make more groups are not offered
    roles:                        # optional: the tensors an optimizer may be offered, by role
      muon: [matrix, head]        # (default: the registry's; Muon's is hidden matrices alone)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from groupwise.domains import Categorical, Domain, FloatRange, IntRange, TupleOf
from groupwise.errors import format_names
from groupwise.optim import available_optimizers, get_optimizer
from groupwise.partition import available_schemes, scheme_options
from groupwise.registry import check_options
from groupwise.schedules import DECAYS, Schedule
from groupwise.studyfiles._frozen import Frozen
from groupwise.studyfiles._objective import Confirm

__all__ = [
    "Choices",
    "FloatSpan",
    "IntSpan",
    "Relative",
    "ScheduleSpace",
    "SchemeRange",
    "SearchSpace",
    "Sharing",
]


class FloatSpan(Frozen):
    """A float range: ``{low: 1e-4, high: 1e-1, log: true}``."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatSpan:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}; swap them")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0; got low {self.low}")
        return self

    def domain(self) -> FloatRange:
        return FloatRange(self.low, self.high, self.log)


class IntSpan(Frozen):
    """A whole-number range: ``{low: 2, high: 4}``."""

    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntSpan:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}; swap them")
        return self

    def domain(self) -> IntRange:
        return IntRange(self.low, self.high, self.log)


class Choices(Frozen):
    """A categorical choice: ``{choices: [true, false]}``."""

    choices: tuple[Any, ...] = Field(min_length=1)

    def domain(self) -> Categorical:
        return Categorical(self.choices)


Span = IntSpan | FloatSpan | Choices
# A hyperparameter is a range, a list of ranges (a tuple setting such as betas), or fixed.
HyperValue = Span | list[Span] | float | int | bool | str | list[float] | None


def to_domain(value: Any) -> Domain | None:
    """The search domain of a hyperparameter entry; None for a fixed value."""
    if isinstance(value, IntSpan | FloatSpan | Choices):
        return value.domain()
    if isinstance(value, list) and value and all(isinstance(v, IntSpan | FloatSpan) for v in value):
        return TupleOf(tuple(v.domain() for v in value))
    return None


class SchemeRange(Frozen):
    """A partition scheme to explore, with fixed options or option ranges."""

    name: str
    options: dict[str, IntSpan | Choices | int | float | str | dict[str, str] | None] = Field(
        default_factory=dict
    )

    @model_validator(mode="before")
    @classmethod
    def _from_short_forms(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict) and "options" not in data:
            return {
                "name": data.get("name"),
                "options": {k: v for k, v in data.items() if k != "name"},
            }
        return data

    @model_validator(mode="after")
    def _known(self) -> SchemeRange:
        if self.name not in available_schemes():
            raise ValueError(
                f"unknown partition scheme {self.name!r}; must be one of "
                f"[{', '.join(available_schemes())}]"
            )
        check_options("scheme", self.name, self.options, scheme_options(self.name), ValueError)
        return self

    @property
    def key(self) -> str:
        """The value the ``scheme`` parameter takes for this entry (unique within a space)."""
        fixed = {k: v for k, v in self.options.items() if not isinstance(v, IntSpan | Choices)}
        if not fixed:
            return self.name
        return self.name + "(" + ",".join(f"{k}={fixed[k]}" for k in sorted(fixed)) + ")"


class Relative(Frozen):
    """A shared base and per-group deviations, so that one optimizer for everything is a point
    of the space rather than a thin diagonal of it.

    - ``base``: the kinds the base optimizer may be (default: every listed optimizer that is
      not an override); sampled once as ``optimizer``, with its ``lr`` and settings.
    - ``lr_scale``: each group's lr as a multiple of the base lr (``<label>.lr_scale``, log
      scale; it must contain 1).
    - ``decay``: ``toggle``: each group keeps the base weight decay or turns it off
      (``<label>.decay``); ``shared``: every group keeps it.
    - ``override``: kinds a group may take instead of the base where its tensors allow (Muon
      on hidden matrices): ``<label>.optimizer`` is ``base`` or one of them, and each
      override's settings are shared by the groups that take it (``<kind>.lr``, ...).
    """

    base: tuple[str, ...] = ()
    lr_scale: FloatSpan = FloatSpan(low=0.1, high=10.0, log=True)
    decay: Literal["toggle", "shared"] = "toggle"
    override: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _sensible(self) -> Relative:
        if not (self.lr_scale.low <= 1.0 <= self.lr_scale.high):
            raise ValueError(
                f"lr_scale must contain 1 (the base lr itself); got {self.lr_scale.low}.."
                f"{self.lr_scale.high}"
            )
        both = sorted(set(self.base) & set(self.override))
        if both:
            raise ValueError(f"{both[0]!r} is both a base and an override; list it in one")
        return self


class ScheduleSpace(Frozen):
    """A space's ``schedule:``: the lr schedule every trial trains with (``groupwise.
    schedules``), each key fixed or searched like any hyperparameter, and the gradient clip
    norm, which interacts with the lr.

    - ``warmup``: a fraction of the run (below 1: ``{low: 0.0, high: 0.1}``) or steps (a whole
      number or an int range);
    - ``decay``: constant, cosine, linear or wsd, or ``{choices: [...]}`` of them;
    - ``final_lr_fraction``: the last step's lr as a fraction of the peak (not for constant);
    - ``decay_fraction``: wsd's share of the run in its final decay;
    - ``grad_clip_norm``: clip the gradients to this norm (none when absent).

    Searched names: ``schedule.warmup``, ``schedule.decay``, ``schedule.final_lr_fraction``,
    ``schedule.decay_fraction``, ``grad_clip_norm``.
    """

    warmup: FloatSpan | IntSpan | int | float = 0
    decay: Choices | str = "constant"
    final_lr_fraction: FloatSpan | float = 0.0
    decay_fraction: FloatSpan | float = 0.2
    grad_clip_norm: FloatSpan | float | None = None

    @model_validator(mode="after")
    def _inside(self) -> ScheduleSpace:
        decays = self.decay.choices if isinstance(self.decay, Choices) else (self.decay,)
        bad = [d for d in decays if d not in DECAYS]
        if bad:
            raise ValueError(f"decay {bad[0]!r} is not one of [{', '.join(DECAYS)}]")
        if isinstance(self.warmup, FloatSpan) and not 0 <= self.warmup.low <= self.warmup.high < 1:
            raise ValueError("warmup as a fraction of the run must lie in [0, 1)")
        for key, low, high in (("final_lr_fraction", 0.0, 1.0), ("decay_fraction", 0.0, 1.0)):
            value = getattr(self, key)
            span = (value.low, value.high) if isinstance(value, FloatSpan) else (value, value)
            if not (low <= span[0] and span[1] <= high) or (
                key == "decay_fraction" and span[0] <= 0
            ):
                raise ValueError(f"{key} must lie in [0, 1] (decay_fraction above 0)")
        clip = self.grad_clip_norm
        if clip is not None and (clip.low if isinstance(clip, FloatSpan) else clip) <= 0:
            raise ValueError("grad_clip_norm must be above 0")
        Schedule(**self.default_schedule())  # the fixed values, checked as a config's are
        return self

    def default_schedule(self) -> dict[str, Any]:
        """The schedule a config gets where it brings none (a recipe's): the fixed values, and
        within a searched range the common choice (a 5% warmup, cosine, to a tenth of the
        peak, a clip norm of 1), pulled into the range."""
        decays = self.decay.choices if isinstance(self.decay, Choices) else (self.decay,)
        return {
            "warmup": _pick(self.warmup, 0.05 if not isinstance(self.warmup, IntSpan) else 0),
            "decay": "cosine" if "cosine" in decays else decays[0],
            "final_lr_fraction": _pick(self.final_lr_fraction, 0.1),
            "decay_fraction": _pick(self.decay_fraction, 0.2),
        }

    def default_clip(self) -> float | None:
        clip = self.grad_clip_norm
        return None if clip is None else float(_pick(clip, 1.0))


def _pick(value: Any, common: float) -> Any:
    """A fixed value, or ``common`` pulled into a searched range."""
    if isinstance(value, FloatSpan | IntSpan):
        return type(value.low)(min(max(common, value.low), value.high))
    return value


class Sharing(Frozen):
    optimizer: Literal["per_group", "shared"] = "per_group"
    lr: Literal["per_group", "shared", "layerwise"] = "per_group"
    hyperparameters: Literal["per_group", "shared"] = "per_group"
    max_groups: int | None = Field(default=None, ge=1)
    lr_decay: FloatSpan = FloatSpan(low=0.5, high=1.0)
    relative: Relative | None = None  # set: the relative parametrization (above)


class SearchSpace(Frozen):
    """What a study explores. Built from a search-space YAML file by :func:`read_search_space`."""

    schemes: tuple[SchemeRange, ...] = Field(min_length=1)
    optimizers: dict[str, dict[str, HyperValue] | None] = Field(min_length=1)
    sharing: Sharing = Sharing()
    # The roles of tensor (groupwise.partition.tensor_roles) each optimizer may be offered;
    # an optimizer not listed takes the registry's (OptimizerInfo.roles).
    roles: dict[str, tuple[Literal["matrix", "embedding", "head", "vector", "other"], ...]] = Field(
        default_factory=dict
    )
    # The lr schedule and clip norm trials train with (None: a constant lr, no clipping).
    schedule: ScheduleSpace | None = None
    # The confirmation of the leaders studies on this space run (a study file's confirm wins).
    confirm: Confirm | None = None
    # Recipes (groupwise.recipes) to try first, in order; a study file's warm_start wins.
    warm_start: tuple[str, ...] = ()
    description: str = ""

    @field_validator("optimizers")
    @classmethod
    def _known_optimizers(cls, value: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
        for name, hyper in value.items():
            if name not in available_optimizers():
                names = ", ".join(available_optimizers())
                raise ValueError(f"unknown optimizer {name!r}; must be one of [{names}]")
            accepted = get_optimizer(name).accepts
            for key in hyper or {}:
                if key not in accepted:
                    raise ValueError(
                        f"optimizer {name!r} has no hyperparameter {key!r}; "
                        f"it accepts {format_names(accepted, 20)}"
                    )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpace:
        keys = [s.key for s in self.schemes]
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            raise ValueError(f"scheme {duplicated[0]!r} is listed twice; list each once")
        if self.sharing.lr == "layerwise" and any(s.name != "depth" for s in self.schemes):
            others = sorted({s.name for s in self.schemes if s.name != "depth"})
            raise ValueError(
                f"sharing.lr 'layerwise' ties the lrs of depth blocks; it needs every scheme to "
                f"be depth, but the space also lists {others}"
            )
        listed = [k for k in self.roles if k not in self.optimizers]
        if listed:
            raise ValueError(
                f"roles names optimizer {listed[0]!r}, which the space does not list under "
                f"optimizers [{', '.join(self.optimizers)}]; list it there or drop its roles"
            )
        relative = self.sharing.relative
        if relative is not None:
            unknown = [k for k in (*relative.base, *relative.override) if k not in self.optimizers]
            if unknown:
                raise ValueError(
                    f"sharing.relative names optimizer {unknown[0]!r}, which the space does not "
                    f"list under optimizers [{', '.join(self.optimizers)}]; list it there"
                )
            if not self.base_kinds():
                raise ValueError("sharing.relative leaves no base optimizer; list one under base")
        return self

    def base_kinds(self) -> tuple[str, ...]:
        """Relative spaces: the kinds the base optimizer may be."""
        relative = self.sharing.relative
        if relative is None:
            return ()
        if relative.base:
            return relative.base
        return tuple(k for k in self.optimizers if k not in relative.override)

    def roles_for(self, optimizer: str) -> frozenset[str] | None:
        """The roles of tensor ``optimizer`` may be offered: the file's, else the registry's
        (None: any it fits)."""
        if optimizer in self.roles:
            return frozenset(self.roles[optimizer])
        return get_optimizer(optimizer).roles

    def domains(self, optimizer: str) -> dict[str, Domain]:
        """The hyperparameters searched for ``optimizer``: the file's, else the registry's."""
        given = self.optimizers[optimizer]
        if not given:
            return dict(get_optimizer(optimizer).search)
        return {k: d for k, v in given.items() if (d := to_domain(v)) is not None}

    def fixed(self, optimizer: str) -> dict[str, Any]:
        """Hyperparameters the file fixes for ``optimizer`` (lists become tuples)."""
        given = self.optimizers[optimizer] or {}
        return {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in given.items()
            if to_domain(v) is None
        }
