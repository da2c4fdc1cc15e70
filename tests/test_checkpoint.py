"""state_dict by parameter name: 10 + save/rebuild/load + 10 == 20, and wrong partitions refused."""

from __future__ import annotations

import io

import pytest
import torch

import zoo
from groupwise import TrialConfig, build_optimizer
from groupwise.errors import CheckpointMismatchError

CONFIG = {
    "scheme": "role",
    "groups": {
        "matrix": {"optimizer": "muon", "lr": 0.02, "momentum": 0.9},
        "embedding": {"optimizer": "adamw", "lr": 0.003, "weight_decay": 0.01},
        "vector": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
    },
}


def batch(step):
    g = torch.Generator().manual_seed(step)
    return torch.randint(0, 40, (3, 8), generator=g)


def train(model, optimizer, scheduler, steps):
    for step in steps:
        optimizer.zero_grad()
        model(batch(step)).logsumexp(-1).mean().backward()
        optimizer.step()
        scheduler.step()


def fresh(seed):
    torch.manual_seed(seed)
    model = zoo.TinyTransformer()
    optimizer = build_optimizer(model, CONFIG)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20)
    return model, optimizer, scheduler


def test_resume_is_identical_to_uninterrupted_training():
    straight = fresh(seed=1)
    train(*straight, range(20))

    first = fresh(seed=1)
    train(*first, range(10))
    buffer = io.BytesIO()
    torch.save(
        {
            "model": first[0].state_dict(),
            "optimizer": first[1].state_dict(),
            "scheduler": first[2].state_dict(),
        },
        buffer,
    )
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed = fresh(seed=2)  # different initial weights: everything must come from the checkpoint
    assert not zoo.params_equal(resumed[0], first[0])
    resumed[0].load_state_dict(saved["model"])
    resumed[1].load_state_dict(saved["optimizer"])
    resumed[2].load_state_dict(saved["scheduler"])
    train(*resumed, range(10, 20))

    assert zoo.params_equal(resumed[0], straight[0])
    assert [g["lr"] for g in resumed[1].param_groups] == [g["lr"] for g in straight[1].param_groups]
    for p_resumed, p_straight in zip(
        resumed[0].parameters(), straight[0].parameters(), strict=True
    ):
        state_a, state_b = resumed[1].state[p_resumed], straight[1].state[p_straight]
        assert state_a.keys() == state_b.keys()
        assert all(
            torch.equal(torch.as_tensor(state_a[k]), torch.as_tensor(state_b[k])) for k in state_a
        )


def test_state_dict_is_keyed_by_name_with_fingerprint():
    model, optimizer, scheduler = fresh(seed=0)
    train(model, optimizer, scheduler, range(2))
    sd = optimizer.state_dict()
    assert set(sd["state"]) == {n for n, p in model.named_parameters()}
    assert "tok.weight" in sd["state"] and "head.weight" not in sd["state"]  # tied: first name
    assert set(sd["param_groups"]) == {"matrix", "embedding", "vector"}
    assert sd["fingerprint"] == optimizer.fingerprint
    assert sd["optimizers"] == {"matrix": "muon", "embedding": "adamw", "vector": "sgd"}


def test_another_partition_is_refused_naming_both_sides():
    _model, optimizer, _ = fresh(seed=0)
    other = build_optimizer(
        zoo.TinyTransformer(),
        {
            "scheme": "decay_split",
            "groups": {"decay": {"optimizer": "adamw"}, "no_decay": {"optimizer": "adamw"}},
        },
    )
    with pytest.raises(CheckpointMismatchError) as info:
        other.load_state_dict(optimizer.state_dict())
    message = str(info.value)
    assert optimizer.fingerprint in message and other.fingerprint in message
    assert "['embedding', 'matrix', 'vector']" in message and "['decay', 'no_decay']" in message


def test_same_partition_other_optimizer_kind_is_refused():
    _model, optimizer, _ = fresh(seed=0)
    changed = TrialConfig.from_dict(CONFIG).to_dict()
    changed["groups"]["vector"] = {"optimizer": "adamw", "lr": 0.01}
    other = build_optimizer(zoo.TinyTransformer(), changed)
    with pytest.raises(CheckpointMismatchError, match="vector: sgd vs adamw"):
        other.load_state_dict(optimizer.state_dict())


def test_a_plain_torch_state_dict_is_refused():
    model, optimizer, _ = fresh(seed=0)
    plain = torch.optim.SGD(model.parameters(), lr=0.1).state_dict()
    with pytest.raises(CheckpointMismatchError, match="not a MultiOptimizer state dict"):
        optimizer.load_state_dict(plain)


def test_deepcopy_and_pickle_keep_a_working_optimizer():
    import copy
    import pickle

    model, optimizer, scheduler = fresh(seed=0)
    train(model, optimizer, scheduler, range(3))
    copied_model, copied_opt = copy.deepcopy((model, optimizer))
    restored_model, restored_opt = pickle.loads(pickle.dumps((model, optimizer)))
    for m, o in ((model, optimizer), (copied_model, copied_opt), (restored_model, restored_opt)):
        o.zero_grad()
        m(batch(99)).logsumexp(-1).mean().backward()
        o.step()
    assert zoo.params_equal(model, copied_model)
    assert zoo.params_equal(model, restored_model)
