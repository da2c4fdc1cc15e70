"""K candidates trained in one batch against each trained alone by ``Trainer`` with the same
seed: the same losses, lrs, reports and final parameters, candidate by candidate.

Tolerances: fp32 updates follow torch's single-tensor arithmetic in the same order, but the
batched forward and backward (vmap over ``functional_call``: bmm where torch runs mm) round
differently, so fp32 agrees to 1e-5 relative. Muon's Newton-Schulz runs in bf16 as torch's
does (bit for bit on the same input: checked below), so a last-bit difference in a gradient
can flip a bf16 rounding of the orthogonalised update, one bf16 ulp (2**-8 relative) of a
step of size lr, which training then carries on and grows (measured on this model: 3e-8
relative after 6 steps, then a flip: 2e-3 after 12, 3e-2 after 40). So Muon is compared over
6 steps, each weight tensor as a whole (the norm of the difference over the norm of the
weights) to 1e-5. Under bf16 autocast (bmm and mm round differently in bf16), losses agree
to 1e-2 and weights to 5e-2.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from groupwise.config import TrialConfig
from groupwise.errors import ConfigError
from groupwise.tasks import resolve_task
from groupwise.training import (
    BatchedTrainer,
    DivergedError,
    EpochReport,
    Trainer,
    TrainingOptions,
    batch_check,
    batch_key,
)

OPTIONS = TrainingOptions(epochs=2, steps_per_epoch=10, batch_size=32)
SHORT = TrainingOptions(epochs=2, steps_per_epoch=3, batch_size=32)  # before any bf16 flip
SCHEDULE = {"warmup": 0.2, "decay": "cosine", "final_lr_fraction": 0.1}


@pytest.fixture(scope="module")
def task() -> Any:
    return resolve_task("digits_mlp", {}, seed=0)


def config(groups: dict[str, dict[str, Any]], **extra: Any) -> TrialConfig:
    return TrialConfig.from_dict({"scheme": "role", "groups": groups, **extra})


def roles(matrix: dict[str, Any], rest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"matrix": matrix, "head": dict(rest), "vector": dict(rest)}


def trained_alone(task: Any, cfg: TrialConfig, options: TrainingOptions) -> Any:
    trainer = Trainer(task, cfg, seed=0, options=options)
    reports = [trainer.run_epoch() for _ in range(options.epochs)]
    return reports, dict(trainer.model.named_parameters())


def assert_same(
    alone: Any, reports: list[EpochReport], params: dict[str, Any], rtol: float, whole: bool = False
) -> None:
    """``whole``: compare each tensor by its norm (rounding flips a few elements)."""
    expected, expected_params = alone
    for mine, theirs in zip(reports, expected, strict=True):
        assert mine.epoch == theirs.epoch and mine.step == theirs.step
        assert mine.train_loss == pytest.approx(theirs.train_loss, rel=rtol)
        assert mine.metrics["val_loss"] == pytest.approx(theirs.metrics["val_loss"], rel=rtol)
        # accuracy counts samples: a rounding can move one of the 360 across the argmax
        assert mine.metrics == pytest.approx(dict(theirs.metrics), rel=rtol, abs=2 / 360)
        assert mine.lrs == pytest.approx(dict(theirs.lrs), rel=1e-12)
    for name, p in expected_params.items():
        if whole:
            assert float((params[name] - p.detach()).norm() / p.detach().norm()) <= rtol, name
        else:
            torch.testing.assert_close(params[name], p.detach(), rtol=rtol, atol=rtol * 1e-2)


CASES = {
    "sgd": (
        [
            roles({"optimizer": "sgd", "lr": 0.05}, {"optimizer": "sgd", "lr": 0.1}),
            roles(
                {"optimizer": "sgd", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-3},
                {"optimizer": "sgd", "lr": 0.01, "momentum": 0.5},
            ),
        ],
        1e-5,
        False,
    ),
    "sgd-nesterov": (
        [
            roles(
                {"optimizer": "sgd", "lr": lr, "momentum": 0.9, "nesterov": True},
                {"optimizer": "sgd", "lr": 0.03, "momentum": 0.8, "nesterov": True},
            )
            for lr in (0.01, 0.05)
        ],
        1e-5,
        False,
    ),
    "adamw": (
        [
            roles(
                {"optimizer": "adamw", "lr": lr, "weight_decay": wd, "betas": (0.85, 0.99)},
                {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4},
            )
            for lr, wd in ((1e-3, 0.1), (1e-2, 1e-3), (3e-3, 0.0))
        ],
        1e-5,
        False,
    ),
    "adam-l2": (
        [
            roles({"optimizer": "adam", "lr": lr, "weight_decay": 1e-2}, {"optimizer": "adam"})
            for lr in (1e-3, 5e-3)
        ],
        1e-5,
        False,
    ),
    "nadamw": (
        [
            roles(
                {"optimizer": "nadamw", "lr": lr, "weight_decay": 0.05, "betas": (0.9, 0.99)},
                {"optimizer": "nadam", "lr": 2e-3, "weight_decay": 1e-3},
            )
            for lr in (1e-3, 4e-3)
        ],
        1e-5,
        False,
    ),
    "muon": (
        [
            roles(
                {"optimizer": "muon", "lr": lr, "momentum": m, "weight_decay": 0.01},
                {"optimizer": "adamw", "lr": 3e-3},
            )
            for lr, m in ((0.02, 0.95), (0.05, 0.9))
        ],
        1e-5,
        True,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_candidate_trains_as_it_would_alone(task: Any, case: str) -> None:
    groups, rtol, whole = CASES[case]
    options = SHORT if whole else OPTIONS
    # per-candidate schedules and clip norms: the second has both, the first neither
    configs = [
        config(g) if i == 0 else config(g, schedule=SCHEDULE, grad_clip_norm=0.5)
        for i, g in enumerate(groups)
    ]
    assert len({batch_key(c) for c in configs}) == 1
    batch = BatchedTrainer(task, configs, seed=0, options=options)
    epochs = [batch.run_epoch() for _ in range(options.epochs)]
    for i, cfg in enumerate(configs):
        reports = [outcomes[i] for outcomes in epochs]
        assert all(isinstance(r, EpochReport) for r in reports)
        alone = trained_alone(task, cfg, options)
        assert_same(alone, reports, batch.parameters_of(i), rtol, whole)


def test_a_pruned_candidate_leaves_and_the_others_go_on(task: Any) -> None:
    configs = [
        config(roles({"optimizer": "adamw", "lr": lr}, {"optimizer": "adamw", "lr": 1e-3}))
        for lr in (1e-3, 3e-3, 1e-2)
    ]
    batch = BatchedTrainer(task, configs, seed=0, options=OPTIONS)
    first = batch.run_epoch()
    batch.drop([1])  # the study pruned it after its first epoch
    second = batch.run_epoch()
    assert set(first) == {0, 1, 2} and set(second) == {0, 2}
    for i in (0, 2):
        alone = trained_alone(task, configs[i], OPTIONS)
        assert_same(alone, [first[i], second[i]], batch.parameters_of(i), 1e-5)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="candidate 1 has left the batch"):
        batch.parameters_of(1)


def test_a_diverging_candidate_stops_where_it_would_alone(task: Any) -> None:
    sane = config(roles({"optimizer": "sgd", "lr": 0.05}, {"optimizer": "sgd", "lr": 0.05}))
    wild = config(roles({"optimizer": "sgd", "lr": 1e4}, {"optimizer": "sgd", "lr": 1e4}))
    with pytest.raises(DivergedError) as alone:
        trained_alone(task, wild, OPTIONS)
    batch = BatchedTrainer(task, [wild, sane], seed=0, options=OPTIONS)
    outcomes = batch.run_epoch()
    assert isinstance(outcomes[0], DivergedError)
    assert str(outcomes[0]) == str(alone.value)
    assert batch.ids == [1]
    second = batch.run_epoch()
    assert set(second) == {1}
    assert_same(
        trained_alone(task, sane, OPTIONS),
        [outcomes[1], second[1]],  # type: ignore[list-item]
        batch.parameters_of(1),
        1e-5,
    )


def test_a_config_that_fails_alone_fails_in_the_batch_with_its_reason(task: Any) -> None:
    good = config(roles({"optimizer": "sgd", "lr": 0.05}, {"optimizer": "sgd", "lr": 0.05}))
    bad = config(roles({"optimizer": "sgd", "lr": 0.05, "momentum": -1.0}, {"optimizer": "sgd"}))
    with pytest.raises(ConfigError) as alone:
        Trainer(task, bad, seed=0, options=OPTIONS)
    batch = BatchedTrainer(task, [bad, good], seed=0, options=OPTIONS)
    assert batch.failed == {0: f"{type(alone.value).__name__}: {alone.value}"}
    assert set(batch.run_epoch()) == {1}


def test_bf16_batched_matches_bf16_alone(task: Any) -> None:
    options = TrainingOptions(epochs=1, steps_per_epoch=10, batch_size=32, precision="bf16")
    configs = [
        config(roles({"optimizer": "adamw", "lr": lr}, {"optimizer": "adamw"}))
        for lr in (1e-3, 1e-2)
    ]
    batch = BatchedTrainer(task, configs, seed=0, options=options)
    outcomes = batch.run_epoch()
    for i, cfg in enumerate(configs):
        assert_same(
            trained_alone(task, cfg, options),
            [outcomes[i]],  # type: ignore[list-item]
            batch.parameters_of(i),
            5e-2,
            whole=True,
        )


def test_batched_newton_schulz_is_torchs_bit_for_bit() -> None:
    from torch.optim._muon import _zeropower_via_newtonschulz

    from groupwise.optim._batched import MUON_COEFFICIENTS, MUON_NS_STEPS, newton_schulz

    eps = torch.tensor([1e-7, 1e-3, 1e-7])  # each candidate's own
    for shape in ((3, 16, 32), (3, 32, 16)):
        g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        g[1] *= 1e-6  # a norm below the second candidate's eps: its clamp acts
        mine = newton_schulz(g, MUON_COEFFICIENTS, MUON_NS_STEPS, eps)
        for k in range(shape[0]):
            theirs = _zeropower_via_newtonschulz(
                g[k], MUON_COEFFICIENTS, MUON_NS_STEPS, float(eps[k])
            )
            assert torch.equal(mine[k], theirs)


def test_batch_keys_group_configs_that_differ_only_in_numbers() -> None:
    a = config(roles({"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}, {"optimizer": "adamw"}))
    b = config(
        roles({"optimizer": "sgd", "lr": 0.2}, {"optimizer": "adamw", "lr": 1e-2}),
        schedule=SCHEDULE,
        grad_clip_norm=1.0,
    )
    nesterov = config(
        roles({"optimizer": "sgd", "nesterov": True, "momentum": 0.9}, {"optimizer": "adamw"})
    )
    other = config(roles({"optimizer": "adam"}, {"optimizer": "adamw"}))
    assert batch_key(a) == batch_key(b)
    assert len({batch_key(a), batch_key(nesterov), batch_key(other)}) == 3


def test_what_cannot_batch_says_why(task: Any) -> None:
    plain = config(roles({"optimizer": "adamw"}, {"optimizer": "adamw"}))
    assert batch_check(task, plain, OPTIONS) is None
    rmsprop = config(roles({"optimizer": "rmsprop"}, {"optimizer": "adamw"}))
    assert "groups.matrix: optimizer 'rmsprop' has no batched step" in str(
        batch_check(task, rmsprop, OPTIONS)
    )
    amsgrad = config(roles({"optimizer": "adamw", "amsgrad": True}, {"optimizer": "adamw"}))
    assert "adamw's amsgrad=True has no batched step" in str(batch_check(task, amsgrad, OPTIONS))
    fp16 = TrainingOptions(epochs=1, precision="fp16")
    assert "GradScaler" in str(batch_check(task, plain, fp16))
    rnn = resolve_task("char_rnn", {}, seed=0)
    single = TrialConfig.from_dict({"scheme": "single", "groups": {"all": {"optimizer": "adamw"}}})
    reason = batch_check(rnn, single, OPTIONS)
    assert reason is not None and "cannot train under torch.func.vmap" in reason
    assert "rnn_tanh" in reason


@pytest.mark.parametrize(("error", "kind"), [("runtime", "failed"), ("memory", "out_of_memory")])
def test_a_batch_that_raises_answers_for_every_candidate(error: str, kind: str) -> None:
    """The worker's side of workers.batch, without Ray: a group's own error (the model raises,
    or memory runs out) is each of its candidates' reply, and the batch is let go."""
    from groupwise.execution._protocol import Stopped, WorkerSettings
    from groupwise.execution._worker import Worker

    settings = WorkerSettings(
        task="user_tasks:raises",
        task_options={"error": error},
        seed=0,
        cpus=1,
        training=TrainingOptions(epochs=2, batch_size=32),
        batch=2,
    )
    worker = Worker(settings)
    groups = {"all": {"optimizer": "adamw", "lr": 1e-3}}
    starts = [(slot, {"scheme": "single", "groups": groups}, None) for slot in (3, 4)]
    replies = worker.step_batch(starts, [])
    assert [slot for slot, _ in replies] == [3, 4]
    for _, reply in replies:
        assert isinstance(reply, Stopped) and reply.kind == kind
        assert "on purpose" in reply.reason
    assert worker.step_batch([], []) == []  # nothing left to train
