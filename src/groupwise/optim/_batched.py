"""Batched optimizer steps: K candidates trained at once, each tensor stacked on a leading
axis of K, each candidate with its own hyperparameters as [K]-shaped tensors.

The arithmetic is torch's single-tensor implementation's (``torch.optim.SGD``, ``Adam``,
``AdamW``, ``NAdam`` and NAdamW, ``Muon``), in the same order, with each Python scalar torch
would use replaced by the candidate's value, so a candidate trained in a batch follows the
one trained alone to float rounding (Muon's Newton-Schulz iteration runs in bf16, as torch's
does, batched with ``baddbmm``). An optimizer kind, or a setting of one, with no batched
step here trains alone: :func:`unbatchable` says why.

Every candidate's lr follows its own config's schedule, as ``groupwise.build``'s LambdaLR
would apply it (step ``i`` at ``schedule.multiplier(min(i, T - 1), T)`` of the peak).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from groupwise.config import TrialConfig
from groupwise.schedules import Schedule

__all__ = [
    "BATCHED_KINDS",
    "BatchedOptimizer",
    "BatchedStep",
    "newton_schulz",
    "per_candidate",
    "unbatchable",
]

Numbers = Mapping[str, Tensor]  # a hyperparameter -> its [K] values (float64)
State = dict[str, Tensor]
# one stacked tensor's update: (tensor, its gradient, its state, hyperparameters, step, nesterov)
Update = Callable[[Tensor, Tensor, State, Numbers, int, bool], None]


@dataclass(frozen=True)
class BatchedStep:
    """One optimizer kind's batched step: the hyperparameters that may differ per candidate
    (with torch's defaults), the settings it implements (at the only value it takes, or a
    frozenset of the values it takes; the candidates of a batch share them), the update of
    one stacked tensor, and torch's default of ``nesterov``."""

    name: str
    numbers: Mapping[str, float]
    settings: Mapping[str, Any]
    update: Update
    nesterov: bool = False


def _defaults(cls: type, names: Sequence[str]) -> dict[str, Any]:
    """torch's own defaults of a constructor's arguments (so they never drift from torch's)."""
    parameters = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    return {name: parameters[name].default for name in names}


def _per(values: Tensor, like: Tensor) -> Tensor:
    """[K] values shaped to broadcast over a stacked tensor [K, ...], in its dtype."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _sgd(p: Tensor, g: Tensor, state: State, h: Numbers, step: int, nesterov: bool) -> None:
    wd, momentum = h["weight_decay"], h["momentum"]
    g = g.add(p * _per(wd, p))
    buf = state.get("momentum_buffer")
    if buf is None:  # torch's first step copies the gradient (with momentum 0: every step)
        buf = state["momentum_buffer"] = g.detach().clone()
    else:
        buf.mul_(_per(momentum, buf)).add_(g)
    g = g.add(buf * _per(momentum, buf)) if nesterov else buf
    p.add_(g * _per(-h["lr"], p))


def _adam(decoupled: bool) -> Update:
    def update(p: Tensor, g: Tensor, state: State, h: Numbers, step: int, _: bool) -> None:
        lr, wd, beta1, beta2 = h["lr"], h["weight_decay"], h["beta1"], h["beta2"]
        if decoupled:
            p.mul_(_per(1 - lr * wd, p))
        else:
            g = g.add(p * _per(wd, p))
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(g, _per(1 - beta1, g))
        exp_avg_sq.mul_(_per(beta2, p)).add_(g * g * _per(1 - beta2, g))
        bias_correction1 = 1 - beta1**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / _per(bias_correction2_sqrt, p)).add_(_per(h["eps"], p))
        p.add_(exp_avg / denom * _per(-step_size, p))

    return update


def _nadam(decoupled: bool) -> Update:
    def update(p: Tensor, g: Tensor, state: State, h: Numbers, step: int, _: bool) -> None:
        lr, wd, beta1, beta2 = h["lr"], h["weight_decay"], h["beta1"], h["beta2"]
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            state["mu_product"] = torch.ones(len(lr), device=p.device)  # float32, as torch's
        exp_avg, exp_avg_sq, product = state["exp_avg"], state["exp_avg_sq"], state["mu_product"]
        bias_correction2 = 1 - beta2**step
        if decoupled:
            p.mul_(_per(1 - lr * wd, p))
        else:
            g = g.add(p * _per(wd, p))
        decay = h["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * decay)))
        product.mul_(mu.to(product.dtype))
        exp_avg.lerp_(g, _per(1 - beta1, g))
        exp_avg_sq.mul_(_per(beta2, p)).add_(g * g * _per(1 - beta2, g))
        denom = (exp_avg_sq / _per(bias_correction2, p)).sqrt().add_(_per(h["eps"], p))
        so_far = product.double()
        p.add_(g / denom * _per(-lr * (1.0 - mu) / (1.0 - so_far), p))
        p.add_(exp_avg / denom * _per(-lr * mu_next / (1.0 - so_far * mu_next), p))

    return update


def newton_schulz(g: Tensor, coefficients: Sequence[float], steps: int, eps: Tensor) -> Tensor:
    """torch.optim.Muon's orthogonalisation of each matrix of a stack [K, m, n], batched;
    ``eps``: each candidate's, [K] (kept on the device: no sync per step)."""
    a, b, c = coefficients
    x = g.bfloat16()
    tall = g.size(-2) > g.size(-1)
    if tall:
        x = x.mT
    norm = torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True)
    x = x / torch.maximum(norm, _per(eps, norm))
    for _ in range(steps):
        gram = x @ x.mT
        update = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.baddbmm(x, update, x, beta=a)
    return x.mT if tall else x


def _muon(p: Tensor, g: Tensor, state: State, h: Numbers, step: int, nesterov: bool) -> None:
    lr, momentum = h["lr"], h["momentum"]
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = torch.zeros_like(g)
    buf = state["momentum_buffer"]
    buf.lerp_(g, _per(1 - momentum, g))
    update = g.lerp(buf, _per(momentum, g)) if nesterov else buf
    update = newton_schulz(update, MUON_COEFFICIENTS, MUON_NS_STEPS, h["eps"])
    rows, cols = p.shape[1:3]
    adjusted = lr * math.sqrt(max(1, rows / cols))  # torch's adjust_lr_fn None ("original")
    p.mul_(_per(1 - lr * h["weight_decay"], p))
    p.add_(update * _per(-adjusted, p))


_muon_defaults = _defaults(torch.optim.Muon, ["ns_coefficients", "ns_steps"])
MUON_COEFFICIENTS: tuple[float, float, float] = _muon_defaults["ns_coefficients"]
MUON_NS_STEPS: int = _muon_defaults["ns_steps"]
_NONE = object()  # a setting no batched step implements
_OFF = {"maximize": False, "foreach": None, "differentiable": False, "fused": None}
_ADAM_OFF = {**_OFF, "amsgrad": False, "capturable": False}


def _adam_kind(name: str, cls: type, decoupled: bool) -> BatchedStep:
    d = _defaults(cls, ["lr", "betas", "eps", "weight_decay"])
    beta1, beta2 = d.pop("betas")
    return BatchedStep(name, {**d, "beta1": beta1, "beta2": beta2}, _ADAM_OFF, _adam(decoupled))


def _nadam_kind(name: str, decoupled: bool) -> BatchedStep:
    d = _defaults(torch.optim.NAdam, ["lr", "betas", "eps", "weight_decay", "momentum_decay"])
    beta1, beta2 = d.pop("betas")
    settings = {**_OFF, "capturable": False, "decoupled_weight_decay": decoupled}
    return BatchedStep(name, {**d, "beta1": beta1, "beta2": beta2}, settings, _nadam(decoupled))


BATCHED_KINDS: dict[str, BatchedStep] = {
    "sgd": BatchedStep(
        "sgd",
        _defaults(torch.optim.SGD, ["lr", "momentum", "weight_decay"]),
        {**_OFF, "dampening": 0, "nesterov": frozenset({False, True})},
        _sgd,
        nesterov=_defaults(torch.optim.SGD, ["nesterov"])["nesterov"],
    ),
    "adam": _adam_kind("adam", torch.optim.Adam, decoupled=False),
    "adamw": _adam_kind("adamw", torch.optim.AdamW, decoupled=True),
    "nadam": _nadam_kind("nadam", decoupled=False),
    "nadamw": _nadam_kind("nadamw", decoupled=True),
    "muon": BatchedStep(
        "muon",
        _defaults(torch.optim.Muon, ["lr", "momentum", "weight_decay", "eps"]),
        {
            "nesterov": frozenset({False, True}),
            "ns_coefficients": _muon_defaults["ns_coefficients"],
            "ns_steps": _muon_defaults["ns_steps"],
            "adjust_lr_fn": None,
        },
        _muon,
        nesterov=_defaults(torch.optim.Muon, ["nesterov"])["nesterov"],
    ),
}


def per_candidate(optimizer: str) -> frozenset[str]:
    """The hyperparameters of an optimizer kind that may differ between candidates of a batch."""
    kind = BATCHED_KINDS.get(optimizer)
    if kind is None:
        return frozenset()
    return frozenset(kind.numbers) | ({"betas"} if "beta1" in kind.numbers else set())


def unbatchable(optimizer: str, hyperparameters: Mapping[str, Any]) -> str | None:
    """Why a group with this optimizer and these settings cannot train in a batch (None: it
    can)."""
    kind = BATCHED_KINDS.get(optimizer)
    if kind is None:
        return f"optimizer {optimizer!r} has no batched step (batched: {sorted(BATCHED_KINDS)})"
    numbers = per_candidate(optimizer)
    for key, value in hyperparameters.items():
        if key in numbers:
            continue
        allowed = kind.settings.get(key, _NONE)
        values = tuple(allowed) if isinstance(allowed, frozenset) else (allowed,)
        if allowed is _NONE or value not in values:
            return f"{optimizer}'s {key}={value!r} has no batched step"
    return None


def _numbers(kind: BatchedStep, settings: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
    """Each per-candidate hyperparameter as a [K] float64 tensor (torch's scalar math is in
    double precision; each update casts to the tensor's dtype where torch would)."""
    rows = []
    for given in settings:
        values = dict(given)
        if "betas" in values:
            values["beta1"], values["beta2"] = values.pop("betas")
        rows.append({k: float(values.get(k, default)) for k, default in kind.numbers.items()})
    return {k: torch.tensor([r[k] for r in rows], dtype=torch.float64) for k in kind.numbers}


@dataclass
class _Group:
    label: str
    kind: BatchedStep
    names: tuple[str, ...]
    peaks: dict[str, Tensor]  # hyperparameters at their peak ("lr" before the schedule)
    nesterov: bool


class BatchedOptimizer:
    """K candidates' optimizers over stacked tensors: one group per label, as
    :class:`~groupwise.MultiOptimizer` has, each hyperparameter a [K] tensor."""

    def __init__(
        self,
        params: Mapping[str, Tensor],
        partition: Mapping[str, Sequence[str]],
        configs: Sequence[TrialConfig],
        total_steps: int,
    ) -> None:
        self.params = params  # name -> the stacked leaf [K, ...]; the trainer may replace them
        # the hyperparameters live beside the tensors they update: no copy per tensor and step
        self.device = next(iter(params.values())).device if params else torch.device("cpu")
        self.total_steps = total_steps
        self.schedules = [c.schedule or Schedule() for c in configs]
        self.count = 0  # optimizer steps taken
        self.state: dict[str, State] = {}
        self.groups: list[_Group] = []
        for label, names in partition.items():
            kinds = {c.groups[label].optimizer for c in configs}
            if len(kinds) != 1:
                raise ValueError(f"groups.{label}: a batch needs one optimizer kind, got {kinds}")
            kind = BATCHED_KINDS[kinds.pop()]
            settings = [c.groups[label].hyperparameters for c in configs]
            nesterov = bool(settings[0].get("nesterov", kind.nesterov))
            peaks = {k: v.to(self.device) for k, v in _numbers(kind, settings).items()}
            self.groups.append(_Group(label, kind, tuple(names), peaks, nesterov))
            for name in names:
                self.state[name] = {}

    def multipliers(self) -> Tensor:
        """Each candidate's lr multiplier at the current step, [K]."""
        step, total = min(self.count, self.total_steps - 1), self.total_steps
        return torch.tensor(
            [s.multiplier(step, total) for s in self.schedules],
            dtype=torch.float64,
            device=self.device,
        )

    @torch.no_grad()
    def step(self) -> None:
        """One step of every candidate (a tensor without a gradient is left as it is)."""
        multiplier = self.multipliers()
        self.count += 1
        for group in self.groups:
            numbers = {**group.peaks, "lr": group.peaks["lr"] * multiplier}
            for name in group.names:
                p = self.params[name]
                if p.grad is None:
                    continue
                group.kind.update(p, p.grad, self.state[name], numbers, self.count, group.nesterov)

    def lrs(self, k: int) -> dict[str, float]:
        """Candidate ``k``'s lr of each label now (as ``MultiOptimizer.lrs`` reports it)."""
        m = float(self.multipliers()[k])
        return {g.label: float(g.peaks["lr"][k]) * m for g in self.groups}

    def keep(self, indices: Sequence[int]) -> None:
        """Keep only these candidates (in this order): the others have left the batch."""
        index = torch.tensor(list(indices), dtype=torch.long, device=self.device)
        self.schedules = [self.schedules[i] for i in indices]
        for group in self.groups:
            group.peaks = {k: v[index] for k, v in group.peaks.items()}
        for state in self.state.values():
            for key, value in state.items():
                state[key] = value[index]
