"""Property: on random nested models with tied and frozen parameters, every scheme labels each
trainable parameter exactly once (under its first name), frozen ones never, no label empty."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from groupwise import partition
from groupwise.errors import PartitionError
from groupwise.partition import trainable_parameters
from groupwise.partition._depth import layer_units
from groupwise.partition._simple import NORM_TYPES, module_type_of

dims = st.integers(1, 4)


@st.composite
def leaves(draw):
    kind = draw(
        st.sampled_from(
            [
                "embedding",
                "linear",
                "conv",
                "lstm",
                "gru",
                "layernorm",
                "batchnorm",
                "relu",
                "param",
            ]
        )
    )
    a, b = draw(dims), draw(dims)
    if kind == "embedding":
        return nn.Embedding(draw(st.integers(2, 6)), a)
    if kind == "linear":
        return nn.Linear(a, b, bias=draw(st.booleans()))
    if kind == "conv":
        return nn.Conv2d(a, b, draw(st.integers(1, 2)), bias=draw(st.booleans()))
    if kind in ("lstm", "gru"):
        cls = nn.LSTM if kind == "lstm" else nn.GRU
        return cls(a, b, num_layers=draw(st.integers(1, 2)), bias=draw(st.booleans()))
    if kind == "layernorm":
        return nn.LayerNorm(a, elementwise_affine=draw(st.booleans()))
    if kind == "batchnorm":
        return nn.BatchNorm1d(a, affine=draw(st.booleans()))
    if kind == "relu":
        return nn.ReLU()
    holder = nn.Module()  # a custom module holding a raw parameter of any rank
    shape = draw(st.lists(dims, min_size=0, max_size=3))
    holder.weight = nn.Parameter(nn.init.normal_(nn.Parameter(__import__("torch").empty(shape))))
    return holder


@st.composite
def containers(draw, depth=0):
    module = draw(st.sampled_from([nn.Module, nn.Sequential]))()
    for i in range(draw(st.integers(1, 4))):
        nested = depth < 2 and draw(st.booleans())
        module.add_module(f"c{i}", draw(containers(depth + 1)) if nested else draw(leaves()))
    if draw(st.booleans()):  # a parameter registered on the container itself
        import torch

        module.register_parameter(
            "own", nn.Parameter(torch.zeros(draw(st.lists(dims, max_size=2))))
        )
    return module


@st.composite
def models(draw):
    model = draw(containers())
    slots = [(m, n) for m in model.modules() for n, p in m.named_parameters(recurse=False)]
    if slots and draw(st.booleans()):  # share a whole submodule under a second name
        children = list(model.named_children())
        model.add_module("again", children[draw(st.integers(0, len(children) - 1))][1])
    for _ in range(draw(st.integers(0, 3)) if len(slots) > 1 else 0):  # tie parameters
        (m1, n1), (m2, n2) = draw(st.permutations(slots))[:2]
        setattr(m2, n2, getattr(m1, n1))
    for m, n in slots:
        if draw(st.floats(0, 1)) < 0.15:
            getattr(m, n).requires_grad_(False)
    return model


def expected_names(model):
    """First name of each distinct trainable tensor, computed without groupwise."""
    seen, names = set(), []
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in seen:
            seen.add(id(p))
            if p.requires_grad:
                names.append(name)
    return names


def check_cover(model, groups, labels_allowed=None):
    flat = [n for names in groups.values() for n in names]
    assert sorted(flat) == sorted(expected_names(model))
    assert len(flat) == len(set(flat))
    assert all(groups.values())
    if labels_allowed is not None:
        assert set(groups) <= set(labels_allowed)


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(models())
def test_fixed_label_schemes_cover_exactly_once(model):
    if not expected_names(model):
        with pytest.raises(PartitionError, match="no trainable parameters"):
            partition(model, "single")
        return
    params = {p.name: p for p in trainable_parameters(model)}
    check_cover(model, partition(model, "single"), ["all"])

    by_type = partition(model, "module_type")
    check_cover(model, by_type, ["embedding", "recurrent", "conv", "linear", "norm", "other"])
    assert all(
        module_type_of(params[n]) == label for label, names in by_type.items() for n in names
    )

    decay = partition(model, "decay_split")
    check_cover(model, decay, ["decay", "no_decay"])
    assert all(
        params[n].ndim >= 2 and not isinstance(params[n].owner, NORM_TYPES)
        for n in decay.get("decay", [])
    )

    role = partition(model, "role")
    check_cover(model, role, ["matrix", "embedding", "head", "vector", "other"])
    assert all(params[n].ndim == 2 for n in role.get("matrix", []))
    assert all(params[n].ndim < 2 for n in role.get("vector", []))


@SETTINGS
@given(models(), st.integers(1, 5))
def test_depth_covers_in_contiguous_blocks(model, blocks):
    names = expected_names(model)
    if not names:
        return
    units = layer_units(model)

    def unit(name: str) -> int:  # the layer a parameter is in; -1 for the root's own
        found = [i for i, u in enumerate(units) if name.startswith(u + ".")]
        return max(found, key=lambda i: len(units[i])) if found else -1

    order = sorted({unit(n) for n in names} - {-1})
    if blocks > max(len(order), 1):
        with pytest.raises(PartitionError, match="layers with trainable parameters"):
            partition(model, "depth", blocks=blocks)
        return
    groups = partition(model, "depth", blocks=blocks)
    check_cover(model, groups, [f"block{i}" for i in range(blocks)])
    position = [max(unit(n) for n in v) for v in groups.values()]
    firsts = [min(unit(n) for n in v) for v in groups.values()]
    assert all(last < nxt for last, nxt in zip(position, firsts[1:], strict=False))
    assert len(groups) == blocks or not order


@SETTINGS
@given(
    models(),
    st.lists(
        st.sampled_from(["weight", "bias", r"^c0\.", r"c1", r"own$", "l0", r"\d"]),
        min_size=1,
        max_size=3,
        unique=True,
    ),
)
def test_by_name_covers_and_respects_first_match(model, patterns):
    if not expected_names(model):
        return
    labeled = {f"p{i}": p for i, p in enumerate(patterns)}
    groups = partition(model, "by_name", patterns=labeled)
    check_cover(model, groups, [*labeled, "rest"])
    for label, names in groups.items():
        for name in names:
            first = next((lab for lab, pat in labeled.items() if re.search(pat, name)), "rest")
            assert first == label
