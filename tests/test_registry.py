"""Every registered optimizer's record agrees with torch; new entries get these tests for free."""

from __future__ import annotations

import inspect

import pytest
import torch

from groupwise import OptimizerInfo, available_optimizers, get_optimizer, register_optimizer
from groupwise.domains import FloatRange, TupleOf
from groupwise.errors import UnknownNameError
from groupwise.optim import IMPLEMENTATION_FLAGS, ParamConstraint

REQUIRED = {
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "nadam",
    "radam",
    "adamax",
    "adafactor",
    "muon",
}
NAMES = available_optimizers()


def test_covers_torch_builtins():
    assert set(NAMES) >= REQUIRED


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_torchs_own(name):
    spec = get_optimizer(name)
    probe = torch.zeros(2, 2, requires_grad=True)
    built = spec.make([probe])
    for key, value in spec.defaults.items():
        assert built.defaults[key] == value, key
    signature = inspect.signature(spec.cls.__init__)
    named = {p.name for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD}
    if spec.cls.__module__.startswith("torch."):  # torch keeps every argument per group
        assert set(spec.accepts) | set(spec.fixed) == named - {"self", "params"}
    else:  # others: what they keep per group, each an argument of theirs
        assert set(spec.accepts) == set(built.defaults) & named
    assert not set(spec.accepts) & set(spec.fixed)  # pinned arguments cannot be set


def edges(domain):
    if isinstance(domain, TupleOf):
        lows, highs = zip(*(edges(d) for d in domain.items), strict=True)
        return tuple(lows), tuple(highs)
    if isinstance(domain, FloatRange):
        return domain.low, domain.high
    return domain.choices[0], domain.choices[-1]


@pytest.mark.parametrize("name", NAMES)
def test_search_ranges_are_accepted_by_torch_at_both_ends(name):
    spec = get_optimizer(name)
    assert "lr" in spec.search
    assert not set(spec.search) & IMPLEMENTATION_FLAGS
    for end in (0, 1):
        settings = {key: edges(domain)[end] for key, domain in spec.search.items()}
        probe = torch.zeros(3, 3, requires_grad=True)
        optimizer = spec.make([probe], **settings)
        if spec.modes:
            optimizer.train()
        probe.grad = torch.ones_like(probe)
        optimizer.step()
        assert torch.isfinite(probe).all()
        assert all(spec.search[k].contains(v) for k, v in settings.items())


@pytest.mark.parametrize("name", NAMES)
def test_records_are_frozen(name):
    spec = get_optimizer(name)
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_constraints_match_what_torch_accepts(name):
    spec = get_optimizer(name)
    for shape in [(3,), (3, 3), (2, 3, 3)]:
        tensor = torch.zeros(shape, requires_grad=True)
        ours = spec.fits([tensor])
        try:
            optimizer = spec.make([tensor])
            if spec.modes:
                optimizer.train()
            tensor.grad = torch.ones_like(tensor)
            optimizer.step()
            theirs = True
        except (ValueError, RuntimeError):
            theirs = False
        assert ours == theirs, f"{name} on shape {shape}: registry says {ours}, torch says {theirs}"


def test_muon_constraint_says_why():
    (constraint,) = get_optimizer("muon").constraints
    why = constraint.violation("fc.bias", torch.zeros(4))
    assert why is not None and "fc.bias has shape (4,) (1-D)" in why and "2-D tensors only" in why


def test_unknown_name():
    with pytest.raises(UnknownNameError, match="unknown optimizer 'lino'.* 'lion'.*must be one of"):
        get_optimizer("lino")


def test_a_new_optimizer_can_register(monkeypatch):
    from groupwise.optim import _registry

    monkeypatch.setattr(_registry.OPTIMIZERS, "_entries", dict(_registry.OPTIMIZERS._entries))

    class Lion(torch.optim.SGD):
        pass

    spec = register_optimizer(
        OptimizerInfo(
            "test_lion",
            Lion,
            {"lr": 1e-3, "momentum": 0.0},
            {"lr": FloatRange(1e-5, 1e-2, log=True)},
            (ParamConstraint("2-D only", ndims=frozenset({2})),),
        )
    )
    assert get_optimizer("test_lion") is spec
    with pytest.raises(ValueError, match="search ranges for unknown keys"):
        register_optimizer(
            OptimizerInfo("test_bad", Lion, {"lr": 1e-3}, {"beta": FloatRange(0, 1)})
        )


SETTINGS = [{}, {"momentum": 0.9}, {"amsgrad": True}, {"centered": True, "momentum": 0.5}]


def elements(state) -> int:
    """Elements of the tensors in an optimizer's state, in lists too (SOAP keeps factors)."""
    if torch.is_tensor(state):
        return state.numel() if state.ndim > 0 else 0
    if isinstance(state, list | tuple):
        return sum(elements(s) for s in state)
    return 0


@pytest.mark.parametrize("name", available_optimizers())
def test_declared_state_size_matches_torch_after_a_real_step(name):
    """Memory-aware admission trusts these counts: check each against torch's own state."""
    spec = get_optimizer(name)
    for settings in SETTINGS:
        settings = {k: v for k, v in settings.items() if k in spec.defaults}
        for shape in [(7, 5), (6,), (3, 4, 5)]:
            if name == "muon" and len(shape) != 2:
                continue
            p = torch.nn.Parameter(torch.randn(shape))
            p.grad = torch.randn(shape)
            optimizer = spec.make([p], **settings)
            if spec.modes:
                optimizer.train()
            optimizer.step()
            held = elements(list(optimizer.state[p].values()))
            assert spec.state_elements(settings, shape) == held, (settings, shape)
