"""The rules that carry a group's lr across width, by name, and the optimizer families they
know. Each gives one tensor's lr multiplier (target lr / proxy lr) from its kind
(:mod:`._shapes`), how much its fan-in and fan-out grew, and its optimizer's family.

With ``n`` the width ratio (a tensor's fan-in ratio, or fan-out ratio where said):

=====================  =========  ========  =========  ======  =================
rule, family           input      hidden    readout    vector  why
=====================  =========  ========  =========  ======  =================
sp-per-layer, adaptive 1          1/n_in    1/n_in     1       Everett et al. 2024, standard
                                                               parametrization, full alignment
                                                               (their recommendation for Adam)
sp-per-layer, sgd      n_out      1         1/n_in     n_out   μP's SGD rates (TP5, Table 3)
                                                               in a standard init: the abc
                                                               symmetry moves the readout's
                                                               init, not its rate
mup, adaptive          1          1/n_in    1          1       the mup package (TP5, Table 8:
                                                               a readout multiplier 1/n)
mup, sgd               n_out      1         n_in       n_out   same table, SGD
any, spectral (Muon)   the spectral condition (Yang, Simon & Bernstein 2023): an update's
                       spectral norm in proportion to sqrt(fan-out / fan-in); Muon's own
                       shape factor (``adjust_lr_fn``) is divided out
none                   1 for every tensor (a copy: the baseline transfer must beat)
=====================  ==========================================================

``fixed`` tensors (nothing grew) keep their lr under every rule. A tensor serving several
layers (a head tied to the token embedding: an input there, a readout here) takes the
smallest multiplier of its roles, the one that keeps every use of it stable.

Adaptive: the Adam family and the other sign-like updates (RMSprop, Adagrad, Lion, Rprop,
SOAP, schedule-free AdamW), whose step does not scale with the gradient. Weight decay is left
as it is: torch's decoupled decay multiplies it by the lr, so it follows the lr as the mup
package's does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from groupwise.errors import ConfigError
from groupwise.registry import Registry
from groupwise.transfer._shapes import TensorWidth

__all__ = ["FAMILIES", "RULES", "Family", "Rule", "family_of", "register_family"]

Family = Literal["adaptive", "sgd", "spectral"]
Rule = Callable[[TensorWidth, Family, Mapping[str, Any]], float]

RULES: Registry[Rule] = Registry("transfer rule")
FAMILIES: Registry[Family] = Registry("optimizer kind with a width rule")

_ADAPTIVE = ("adam", "adamw", "nadam", "nadamw", "radam", "adamax", "rmsprop", "adagrad")
for _name in (*_ADAPTIVE, "rprop", "lion", "soap", "sfadamw"):
    FAMILIES.add(_name, "adaptive")
FAMILIES.add("sgd", "sgd")
FAMILIES.add("asgd", "sgd")
FAMILIES.add("muon", "spectral")


def register_family(optimizer: str, family: Family) -> None:
    """Give an optimizer kind of your own a family, so transfer rules know how its lr scales:
    ``adaptive`` (the step does not scale with the gradient: Adam-like, sign-like), ``sgd``
    (it does) or ``spectral`` (an orthogonalised matrix update, as Muon's)."""
    if family not in ("adaptive", "sgd", "spectral"):
        raise ConfigError(
            f"register_family: {family!r} is not a family; one of adaptive, sgd, spectral"
        )
    FAMILIES.add(optimizer, family)


def family_of(optimizer: str, rule: str, where: str) -> Family:
    if optimizer not in FAMILIES:
        raise ConfigError(
            f"{where}: optimizer {optimizer!r} has no width rule, so rule {rule!r} cannot "
            f"carry its lr; known: {', '.join(FAMILIES.names())}; use rule 'none' (a copy) "
            "or groupwise.transfer.register_family(name, 'adaptive' | 'sgd' | 'spectral')"
        )
    return FAMILIES.get(optimizer)


_TABLE: dict[tuple[str, Family], dict[str, Callable[[TensorWidth], float]]] = {
    ("sp-per-layer", "adaptive"): {
        "hidden": lambda t: 1 / t.m_in,
        "readout": lambda t: 1 / t.m_in,
    },
    ("sp-per-layer", "sgd"): {
        "input": lambda t: t.m_out,
        "readout": lambda t: 1 / t.m_in,
        "vector": lambda t: t.m_out,
    },
    ("mup", "adaptive"): {"hidden": lambda t: 1 / t.m_in},
    ("mup", "sgd"): {
        "input": lambda t: t.m_out,
        "readout": lambda t: t.m_in,
        "vector": lambda t: t.m_out,
    },
}


def _muon_shape_factor(shape: tuple[int, ...], adjust: Any) -> float:
    """torch.optim.Muon's own lr factor for a matrix of this shape (``_adjust_lr``)."""
    rows, cols = shape[0], math.prod(shape[1:])
    if adjust is None or adjust == "original":
        return math.sqrt(max(1.0, rows / cols))
    if adjust == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def _spectral(tensor: TensorWidth, hyper: Mapping[str, Any]) -> float:
    adjust = hyper.get("adjust_lr_fn")
    wanted = math.sqrt(tensor.m_out / tensor.m_in)
    own = _muon_shape_factor(tensor.target_shape, adjust) / _muon_shape_factor(
        tensor.proxy_shape, adjust
    )
    return wanted / own


def _tabled(name: str) -> Rule:
    def rule(tensor: TensorWidth, family: Family, hyper: Mapping[str, Any]) -> float:
        if tensor.kind == "fixed":
            return 1.0
        if family == "spectral":
            return _spectral(tensor, hyper)
        scale = _TABLE[(name, family)].get(tensor.kind)
        return 1.0 if scale is None else scale(tensor)

    rule.__name__ = rule.__qualname__ = name.replace("-", "_")
    return rule


RULES.add("sp-per-layer", _tabled("sp-per-layer"))
RULES.add("mup", _tabled("mup"))
RULES.add("none", lambda tensor, family, hyper: 1.0)
