"""MultiOptimizer must compute exactly what the hand-built torch optimizers compute."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import zoo
from groupwise import available_optimizers, build_optimizer, get_optimizer
from groupwise.domains import Categorical, FloatRange, IntRange, TupleOf

STEPS = 20


def midpoint(domain):
    """A non-default value inside a registry range, so the test also checks settings reach torch."""
    if isinstance(domain, FloatRange):
        if domain.log:
            return math.sqrt(domain.low * domain.high)
        return (domain.low + domain.high) / 2
    if isinstance(domain, IntRange):
        return (domain.low + domain.high) // 2
    if isinstance(domain, Categorical):
        return domain.choices[-1]
    if isinstance(domain, TupleOf):
        return tuple(midpoint(d) for d in domain.items)
    raise TypeError(domain)


def model_and_batches(spec):
    """The mixed model unless the optimizer cannot take its tensors (Muon: matrices only)."""
    model = zoo.mixed_model()
    if spec.fits(model.parameters()):
        xs = [torch.randint(0, 20, (8, 5)) for _ in range(STEPS)]
    else:
        model = zoo.matrices_only()
        xs = [torch.randn(8, 6) for _ in range(STEPS)]
    ys = [torch.randn(8, 3) for _ in range(STEPS)]
    return model, list(zip(xs, ys, strict=True))


def train(model, optimizer, batches, optimizers_by_hand=()):
    for opt in optimizers_by_hand or (optimizer,):
        if callable(getattr(opt, "train", None)):  # schedule-free: step in training mode
            opt.train()
    for x, y in batches:
        loss = nn.functional.mse_loss(model(x), y)
        for opt in optimizers_by_hand or (optimizer,):
            opt.zero_grad()
        loss.backward()
        for opt in optimizers_by_hand or (optimizer,):
            opt.step()


@pytest.mark.parametrize("name", available_optimizers())
def test_single_group_matches_torch_bit_for_bit(name):
    spec = get_optimizer(name)
    hyper = {key: midpoint(domain) for key, domain in spec.search.items()}
    model, batches = model_and_batches(spec)
    ours, theirs, initial = model, zoo.twin(model), zoo.twin(model)

    optimizer = build_optimizer(
        ours, {"scheme": "single", "groups": {"all": {"optimizer": name, **hyper}}}
    )
    reference = spec.make(theirs.parameters(), **hyper)
    train(ours, optimizer, batches)
    train(theirs, reference, batches)

    assert zoo.params_equal(ours, theirs)
    assert not zoo.params_equal(ours, initial)  # it did train
    assert type(optimizer.optimizers[name]) is spec.cls


def test_seed_000_mixed_config_matches_two_hand_built_optimizers(my_model):
    x = torch.randint(0, 50, (7, 4))
    batches = [(x, torch.randn(7, 4, 1)) for _ in range(STEPS)]
    ours, theirs = my_model, zoo.twin(my_model)
    optimizer = build_optimizer(
        ours,
        {
            "scheme": "module_type",
            "groups": {
                "embedding": {"optimizer": "adamw", "lr": 0.001, "weight_decay": 0.01},
                "recurrent": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
                "linear": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
            },
        },
    )
    # What seed 000 meant to write, used correctly: one backward, then each optimizer steps.
    adamw = torch.optim.AdamW(theirs.embedding.parameters(), lr=0.001, weight_decay=0.01)
    sgd = torch.optim.SGD([*theirs.rnn.parameters(), *theirs.fc.parameters()], lr=0.1, momentum=0.9)
    train(ours, optimizer, batches)
    train(theirs, None, batches, optimizers_by_hand=(adamw, sgd))

    assert zoo.params_equal(ours, theirs)
    assert set(optimizer.optimizers) == {"adamw", "sgd"}  # one inner optimizer per kind
    assert [g["label"] for g in optimizer.param_groups] == ["embedding", "recurrent", "linear"]


def test_seed_000_loop_fails_where_ours_cannot(my_model):
    """The seed's loop runs backward once per optimizer: the second backward raises."""
    opts = [
        torch.optim.AdamW(my_model.embedding.parameters()),
        torch.optim.SGD(my_model.fc.parameters()),
    ]
    loss = my_model(torch.randint(0, 50, (3, 2))).sum()
    opts[0].zero_grad()
    loss.backward()
    opts[0].step()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_closure_is_evaluated_once_and_its_loss_returned(my_model):
    optimizer = build_optimizer(
        my_model,
        {
            "scheme": "decay_split",
            "groups": {
                "decay": {"optimizer": "adamw"},
                "no_decay": {"optimizer": "sgd", "lr": 0.1},
            },
        },
    )
    calls = []

    def closure():
        calls.append(1)
        optimizer.zero_grad()
        loss = my_model(torch.randint(0, 50, (3, 2))).pow(2).mean()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert len(calls) == 1
    assert isinstance(loss, torch.Tensor)


def test_tied_weights_are_stepped_once():
    model = zoo.TinyTransformer()
    reference = zoo.twin(model)
    optimizer = build_optimizer(
        model, {"scheme": "single", "groups": {"all": {"optimizer": "adam", "lr": 0.01}}}
    )
    by_hand = torch.optim.Adam(reference.parameters(), lr=0.01)
    batches = [(torch.randint(0, 40, (2, 8)),) * 2 for _ in range(5)]
    for m, opt in ((model, optimizer), (reference, by_hand)):
        for x, _ in batches:
            opt.zero_grad()
            m(x).logsumexp(-1).mean().backward()
            opt.step()
    assert model.head.weight is model.tok.weight
    assert zoo.params_equal(model, reference)
