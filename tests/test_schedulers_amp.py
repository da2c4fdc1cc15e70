"""torch's LR schedulers and GradScaler drive a mixed MultiOptimizer unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as sched

import zoo
from groupwise import build_optimizer

MIXED = {
    "scheme": "role",
    "groups": {
        "matrix": {"optimizer": "muon", "lr": 0.02},
        "embedding": {"optimizer": "adamw", "lr": 0.003},
        "vector": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
    },
}
STEPS = 12


def mixed():
    model = zoo.TinyTransformer()
    optimizer = build_optimizer(model, MIXED)
    assert len(optimizer.optimizers) == 3
    return model, optimizer


def reference_like(optimizer):
    """A plain torch optimizer with one group per MultiOptimizer group, same lrs."""
    return torch.optim.SGD(
        [
            {"params": [torch.zeros(1, requires_grad=True)], "lr": g["lr"]}
            for g in optimizer.param_groups
        ]
    )


SCHEDULERS = {
    "StepLR": lambda opt: sched.StepLR(opt, step_size=3, gamma=0.5),
    "CosineAnnealingLR": lambda opt: sched.CosineAnnealingLR(opt, T_max=STEPS),
    "OneCycleLR": lambda opt: sched.OneCycleLR(
        opt, max_lr=[0.05, 0.01, 0.2], total_steps=STEPS, cycle_momentum=False
    ),
    "LambdaLR": lambda opt: sched.LambdaLR(opt, lr_lambda=lambda epoch: 0.8**epoch),
    "SequentialLR": lambda opt: sched.SequentialLR(
        opt,
        schedulers=[
            sched.LinearLR(opt, start_factor=0.1, total_iters=4),
            sched.CosineAnnealingLR(opt, T_max=8),
        ],
        milestones=[4],
    ),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_scheduler_drives_every_group(name):
    model, optimizer = mixed()
    reference = reference_like(optimizer)
    ours, theirs = SCHEDULERS[name](optimizer), SCHEDULERS[name](reference)
    seen = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        model(torch.randint(0, 40, (2, 8))).logsumexp(-1).mean().backward()
        optimizer.step()
        reference.step()
        ours.step()
        theirs.step()
        lrs = [g["lr"] for g in optimizer.param_groups]
        assert lrs == [g["lr"] for g in reference.param_groups]
        # the inner optimizers use the very same dicts
        inner = {g["label"]: g["lr"] for o in optimizer.optimizers.values() for g in o.param_groups}
        assert lrs == [inner[g["label"]] for g in optimizer.param_groups]
        seen.append(lrs)
    for group in range(len(optimizer.param_groups)):
        assert len({lrs[group] for lrs in seen}) > 1, f"group {group}'s lr never moved"


def test_one_cycle_cycles_momentum_like_torch_on_a_single_kind():
    model = zoo.mixed_model()
    reference_model = zoo.twin(model)
    cfg = {
        "scheme": "decay_split",
        "groups": {
            "decay": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
            "no_decay": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        },
    }
    optimizer = build_optimizer(model, cfg)
    reference = torch.optim.SGD(
        [
            {
                "params": [
                    model_p
                    for n, model_p in reference_model.named_parameters()
                    if model_p.ndim >= 2 and "norm" not in n
                ],
                "lr": 0.1,
            },
            {
                "params": [
                    p for n, p in reference_model.named_parameters() if p.ndim < 2 or "norm" in n
                ],
                "lr": 0.05,
            },
        ],
        momentum=0.9,
    )
    ours = sched.OneCycleLR(optimizer, max_lr=[0.2, 0.1], total_steps=STEPS)
    theirs = sched.OneCycleLR(reference, max_lr=[0.2, 0.1], total_steps=STEPS)
    for _ in range(STEPS):
        x, y = torch.randint(0, 20, (4, 5)), torch.randn(4, 3)
        for m, opt, s in ((model, optimizer, ours), (reference_model, reference, theirs)):
            opt.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            opt.step()
            s.step()
        assert [g["momentum"] for g in optimizer.param_groups] == [
            g["momentum"] for g in reference.param_groups
        ]
    assert zoo.params_equal(model, reference_model)


def test_one_cycle_momentum_on_mixed_kinds_is_refused_not_silently_wrong():
    _, optimizer = mixed()
    with pytest.raises(ValueError, match="momentum or beta1"):
        sched.OneCycleLR(optimizer, max_lr=0.01, total_steps=STEPS)


def test_grad_scaler_steps_it_like_the_hand_built_optimizers(my_model):
    cfg = {
        "scheme": "module_type",
        "groups": {
            "embedding": {"optimizer": "adamw", "lr": 0.01},
            "recurrent": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
            "linear": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
        },
    }
    theirs = zoo.twin(my_model)
    optimizer = build_optimizer(my_model, cfg)
    adamw = torch.optim.AdamW(theirs.embedding.parameters(), lr=0.01)
    sgd = torch.optim.SGD([*theirs.rnn.parameters(), *theirs.fc.parameters()], lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    scaler_ref = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    before_skip = None
    for step in range(10):
        x = torch.randint(0, 50, (6, 3))
        poison = float("inf") if step == 4 else 1.0  # an overflow: the step must be skipped
        if step == 4:
            before_skip = zoo.twin(my_model)
        for model, s, opts in (
            (my_model, scaler, (optimizer,)),
            (theirs, scaler_ref, (adamw, sgd)),
        ):
            for o in opts:
                o.zero_grad()
            s.scale(model(x).pow(2).mean() * poison).backward()
            for o in opts:
                s.step(o)
            s.update()
        if step == 4:
            assert zoo.params_equal(my_model, before_skip)
        assert scaler.get_scale() == scaler_ref.get_scale()
        assert zoo.params_equal(my_model, theirs)
    assert scaler.get_scale() != 2.0**10
