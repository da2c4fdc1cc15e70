"""Learning-rate schedules: each shape's lr at the points that define it, against values
worked out by hand; a config's schedule survives export and rebuilds to the same lr at every
step; what a schedule cannot be is one line."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import groupwise
from groupwise.config import TrialConfig
from groupwise.errors import ConfigError
from groupwise.schedules import Schedule

T = 101  # steps in the run: its midpoint after a 10-step warmup is step 55


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # step 0, end of warmup (step 9), midpoint of the decay (step 55), last step (100)
        (Schedule(warmup=10, decay="constant"), [0.1, 1.0, 1.0, 1.0]),
        (Schedule(warmup=10, decay="linear", final_lr_fraction=0.1), [0.1, 1.0, 0.55, 0.1]),
        (Schedule(warmup=10, decay="cosine", final_lr_fraction=0.0), [0.1, 1.0, 0.5, 0.0]),
        (Schedule(warmup=10, decay="cosine", final_lr_fraction=0.2), [0.1, 1.0, 0.6, 0.2]),
        # wsd: the last round(0.2 * 101) = 20 steps decay, from step 81 to step 100
        (Schedule(warmup=10, decay="wsd", final_lr_fraction=0.0), [0.1, 1.0, 1.0, 0.0]),
    ],
)
def test_each_shape_at_its_defining_points(schedule, expected):
    got = [schedule.multiplier(step, T) for step in (0, 9, 55, T - 1)]
    assert got == pytest.approx(expected, abs=1e-12)


def test_warmup_as_a_fraction_and_wsds_decay_phase():
    s = Schedule(warmup=0.1, decay="wsd", final_lr_fraction=0.1, decay_fraction=0.2)
    assert s.warmup_steps(100) == 10 and s.multiplier(0, 100) == pytest.approx(0.1)
    assert s.multiplier(79, 100) == 1.0  # stable until the last 20 steps
    assert s.multiplier(80, 100) == pytest.approx(1.0)  # the decay's first step
    assert s.multiplier(89, 100) == pytest.approx(0.1 + 0.9 * (1 - 9 / 19))
    assert s.multiplier(99, 100) == pytest.approx(0.1)
    assert Schedule(decay="cosine").multiplier(0, 1) == 1.0  # a one-step run: its peak


def model_and_config(schedule: Schedule) -> tuple[nn.Module, TrialConfig]:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    groups = {
        "decay": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1},
        "no_decay": {"optimizer": "sgd", "lr": 0.5, "momentum": 0.9},
    }
    config = TrialConfig.from_dict({"scheme": "decay_split", "groups": groups})
    return model, TrialConfig(config.scheme, config.groups, schedule, 1.0)


@pytest.mark.parametrize("decay", ["constant", "linear", "cosine", "wsd"])
def test_an_exported_schedule_rebuilds_to_the_same_lrs_at_every_step(tmp_path, decay):
    """Every group follows the shape from its own peak; export -> groupwise.build gives the
    same lrs, step by step, as the shape says."""
    schedule = Schedule(
        warmup=5, decay=decay, final_lr_fraction=0.05 if decay != "constant" else 0.0
    )
    model, config = model_and_config(schedule)
    path = config.save(tmp_path / "best.yaml")
    loaded = TrialConfig.load(path)
    assert loaded == config and loaded.grad_clip_norm == 1.0
    optimizer, scheduler = groupwise.build(model, path, total_steps=40)
    peaks = {"decay": 0.01, "no_decay": 0.5}
    for step in range(40):
        for group in optimizer.param_groups:
            want = peaks[group["label"]] * schedule.multiplier(step, 40)
            assert group["lr"] == pytest.approx(want, rel=1e-12), (step, group["label"])
        model(torch.tensor([1, 2])).sum().backward()
        optimizer.step()
        scheduler.step()


def test_build_optimizer_refuses_a_schedule_it_would_ignore():
    model, config = model_and_config(Schedule(warmup=5, decay="cosine"))
    with pytest.raises(ConfigError, match=r"has a schedule .*groupwise.build\(model, config"):
        groupwise.build_optimizer(model, config)
    with pytest.raises(ConfigError, match="total_steps: a run needs at least one step; got 0"):
        groupwise.build(model, config, total_steps=0)


def test_a_schedule_free_optimizer_takes_a_warmup_only():
    pytest.importorskip("schedulefree")
    model = nn.Linear(4, 2)
    groups = {"all": {"optimizer": "sfadamw", "lr": 0.01}}
    warm = TrialConfig.from_dict({"scheme": "single", "groups": groups, "schedule": {"warmup": 3}})
    optimizer, _ = groupwise.build(model, warm, total_steps=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / 3)
    decayed = {"scheme": "single", "groups": groups, "schedule": {"decay": "cosine"}}
    with pytest.raises(ConfigError, match="sfadamw is schedule-free: it takes a warmup only"):
        groupwise.build(model, decayed, total_steps=10)


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ({"warmup": 1.0}, "schedule.warmup: a fraction of the run must be in [0, 1); got 1.0"),
        ({"warmup": -2}, "schedule.warmup: steps must be >= 0"),
        (
            {"decay": "exponential"},
            "schedule.decay: must be one of [constant, cosine, linear, wsd]",
        ),
        (
            {"decay": "cosine", "final_lr_fraction": 2},
            "final_lr_fraction: must be a number in [0, 1]",
        ),
        ({"decay": "cosine", "decay_fraction": 0.3}, "decay_fraction: applies to decay: wsd only"),
        ({"warmpu": 3}, "unknown key 'warmpu'"),
        ("cosine", "schedule: must be a mapping"),
    ],
)
def test_a_bad_schedule_is_one_line(schedule, fragment):
    with pytest.raises(ConfigError) as raised:
        TrialConfig.from_dict(
            {"scheme": "single", "groups": {"all": {"optimizer": "sgd"}}, "schedule": schedule}
        )
    assert fragment in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith("config.schedule")


def test_a_config_without_a_schedule_is_as_before():
    """An old export (no schedule, no clip) round-trips unchanged, and its canonical form has
    no new keys (configs already in studies keep their keys)."""
    plain = {"scheme": "single", "groups": {"all": {"optimizer": "sgd", "lr": 0.1}}}
    config = TrialConfig.from_dict(plain)
    assert config.to_dict() == plain and config.schedule is None and config.grad_clip_norm is None
    assert math.isclose(
        groupwise.build_optimizer(nn.Linear(2, 2), config).param_groups[0]["lr"], 0.1
    )


def test_a_space_that_decays_a_schedule_free_optimizer_is_refused_before_anything_runs(tmp_path):
    pytest.importorskip("schedulefree")
    from groupwise.errors import SpecError
    from groupwise.plan import make_plan
    from groupwise.studyfiles import read_study

    (tmp_path / "space.yaml").write_text(
        "schemes: [single]\noptimizers: {adamw: {}, sfadamw: {}}\n"
        "schedule: {warmup: 0.05, decay: cosine, final_lr_fraction: 0.1}\n"
    )
    (tmp_path / "s.yaml").write_text(
        "name: s\ntask: digits_mlp\nsearch_space: space.yaml\nbudget: {trials: 2}\n"
    )
    with pytest.raises(SpecError, match="sfadamw is schedule-free: it takes a warmup only"):
        make_plan(read_study(tmp_path / "s.yaml"))
