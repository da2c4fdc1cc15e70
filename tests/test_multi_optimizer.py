"""The MultiOptimizer contract beyond equivalence: real group dicts, order, state, new groups."""

from __future__ import annotations

import torch
from torch import nn

import zoo
from groupwise import MultiOptimizer, build_optimizer

INTERLEAVED = {
    "scheme": "module_type",
    "groups": {
        "embedding": {"optimizer": "adamw", "lr": 0.01},
        "recurrent": {"optimizer": "sgd", "lr": 0.1},
        "linear": {"optimizer": "adamw", "lr": 0.02},
    },
}


def step(model, optimizer):
    optimizer.zero_grad()
    model(torch.randint(0, 50, (4, 2))).pow(2).mean().backward()
    optimizer.step()


def test_is_a_torch_optimizer_with_one_inner_per_kind(my_model):
    optimizer = build_optimizer(my_model, INTERLEAVED)
    assert isinstance(optimizer, torch.optim.Optimizer) and isinstance(optimizer, MultiOptimizer)
    assert {k: type(v) for k, v in optimizer.optimizers.items()} == {
        "adamw": torch.optim.AdamW,
        "sgd": torch.optim.SGD,
    }
    assert [len(o.param_groups) for o in optimizer.optimizers.values()] == [2, 1]


def test_param_groups_are_the_inner_dicts_in_label_order(my_model):
    optimizer = build_optimizer(my_model, INTERLEAVED)
    assert [g["label"] for g in optimizer.param_groups] == ["embedding", "recurrent", "linear"]
    inner_ids = {id(g) for o in optimizer.optimizers.values() for g in o.param_groups}
    assert {id(g) for g in optimizer.param_groups} == inner_ids
    optimizer.param_groups[2]["lr"] = 0.5
    assert optimizer.optimizers["adamw"].param_groups[1]["lr"] == 0.5


def test_param_groups_stay_the_inner_dicts_after_load_state_dict(my_model):
    optimizer = build_optimizer(my_model, INTERLEAVED)
    groups_list = optimizer.param_groups
    step(my_model, optimizer)
    optimizer.load_state_dict(optimizer.state_dict())
    assert optimizer.param_groups is groups_list
    inner_ids = {id(g) for o in optimizer.optimizers.values() for g in o.param_groups}
    assert {id(g) for g in optimizer.param_groups} == inner_ids


def test_settings_reach_torch_and_implementation_flags_pass_through(my_model):
    cfg = {
        "scheme": "single",
        "groups": {"all": {"optimizer": "adam", "lr": 0.004, "foreach": True, "betas": [0.8, 0.9]}},
    }
    group = build_optimizer(my_model, cfg).optimizers["adam"].param_groups[0]
    assert (group["lr"], group["foreach"], group["betas"]) == (0.004, True, (0.8, 0.9))
    assert group["eps"] == 1e-8  # torch's default fills what the config leaves out


def test_state_is_readable_per_parameter(my_model):
    optimizer = build_optimizer(my_model, INTERLEAVED)
    step(my_model, optimizer)
    assert set(optimizer.state[my_model.embedding.weight]) == {"step", "exp_avg", "exp_avg_sq"}
    # AdamW keeps state for its 3 tensors; SGD without momentum keeps none for the RNN's 4
    assert len(optimizer.state) == 3
    assert optimizer.state[my_model.rnn.weight_hh_l0] == {}


def test_zero_grad_clears_every_group(my_model):
    optimizer = build_optimizer(my_model, INTERLEAVED)
    step(my_model, optimizer)
    optimizer.zero_grad()
    assert all(p.grad is None for p in my_model.parameters())


def test_add_param_group_for_progressively_unfrozen_layers():
    model = zoo.MyModel()
    model.embedding.weight.requires_grad_(False)
    optimizer = build_optimizer(
        model, {"scheme": "single", "groups": {"all": {"optimizer": "sgd", "lr": 0.1}}}
    )
    assert "embedding.weight" not in optimizer.partition["all"]

    model.embedding.weight.requires_grad_(True)
    optimizer.add_param_group(
        {"params": [model.embedding.weight], "label": "embedding", "optimizer": "adamw", "lr": 1e-3}
    )
    assert optimizer.partition["embedding"] == ("embedding.weight",)
    assert [g["label"] for g in optimizer.param_groups] == ["all", "embedding"]
    before = model.embedding.weight.detach().clone()
    step(model, optimizer)
    assert not torch.equal(before, model.embedding.weight)
    assert "embedding.weight" in optimizer.state_dict()["state"]


def test_summary_lists_groups_optimizers_and_counts(my_model):
    text = str(build_optimizer(my_model, INTERLEAVED).summary())
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["group", "tensors", "params", "optimizer", "settings"]
    assert lines[1].split()[:4] == ["embedding", "1", "800", "adamw"]
    total = sum(p.numel() for p in my_model.parameters())
    assert lines[-1].split() == ["total", "7", f"{total:,}"]


def test_step_hooks_of_torch_optimizers_work(my_model):
    optimizer = build_optimizer(my_model, INTERLEAVED)
    calls = []
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append(opt))
    step(my_model, optimizer)
    assert calls == [optimizer]


def test_frozen_parameters_are_left_alone():
    model = zoo.seed_sequential()
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    optimizer = build_optimizer(
        model, {"scheme": "single", "groups": {"all": {"optimizer": "sgd", "lr": 1.0}}}
    )
    optimizer.zero_grad()
    model(torch.randn(3, 10)).sum().backward()
    optimizer.step()
    assert torch.equal(model[0].weight, frozen)
    assert "0.weight" not in optimizer.partition["all"]
    assert isinstance(model[0], nn.Linear)
