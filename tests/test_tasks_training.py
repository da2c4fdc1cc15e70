"""Built-in tasks on real offline data, and the train loop (no Optuna, SQL or Ray)."""

from __future__ import annotations

import math

import pytest
import torch

from groupwise.config import TrialConfig
from groupwise.errors import TaskError
from groupwise.execution import Stopped, Worker, WorkerSettings
from groupwise.tasks import available_tasks, resolve_task
from groupwise.tasks._text import CORPUS_MODULES, corpus
from groupwise.training import DivergedError, Trainer, TrainingOptions

ADAMW = TrialConfig.from_dict(
    {"scheme": "single", "groups": {"all": {"optimizer": "adamw", "lr": 3e-3}}}
)


def test_builtins_cover_the_seeds_and_the_transformer():
    assert {"char_rnn", "char_lstm", "digits_mlp", "digits_cnn", "tiny_transformer"} <= set(
        available_tasks()
    )


@pytest.mark.parametrize(
    "name", ["char_rnn", "char_lstm", "digits_mlp", "digits_cnn", "tiny_transformer"]
)
def test_each_builtin_trains_and_learns(name):
    task = resolve_task(name, seed=0)
    trainer = Trainer(task, ADAMW, steps_per_epoch=30, batch_size=32)
    reports = [trainer.run_epoch() for _ in range(2)]
    losses = [r.metrics["val_loss"] for r in reports]
    assert losses[1] < losses[0]
    assert set(reports[0].metrics) == set(task.metric_names)


def test_the_text_corpus_is_the_standard_librarys_source():
    text = corpus(10**9)
    assert len(text) > 100_000
    assert "class ArgumentParser" in text and "def dedent" in text
    assert len(CORPUS_MODULES) >= 5


def test_digits_split_is_fixed_by_seed():
    a, b, c = (resolve_task("digits_mlp", seed=s).data for s in (0, 0, 1))
    assert torch.equal(a.val_y, b.val_y) and torch.equal(a.val_x, b.val_x)
    assert not torch.equal(a.val_x, c.val_x)
    assert len(a.train_x) + len(a.val_x) == 1797  # the whole bundled set, no overlap
    assert len({tuple(r.tolist()) for r in torch.cat([a.train_x, a.val_x])}) > 1700


def _final(task, config, seed):
    trainer = Trainer(task, config, seed=seed, batch_size=64)
    return [trainer.run_epoch() for _ in range(2)][-1].metrics


def test_same_seed_same_result():
    task = resolve_task("digits_mlp", seed=0)
    assert _final(task, ADAMW, 7) == _final(task, ADAMW, 7)
    assert _final(task, ADAMW, 8) != _final(task, ADAMW, 7)


def test_huge_lr_diverges_with_a_reason():
    task = resolve_task("digits_mlp", seed=0)
    config = TrialConfig.from_dict(
        {"scheme": "single", "groups": {"all": {"optimizer": "sgd", "lr": 1e8}}}
    )
    with pytest.raises(DivergedError, match=r"^diverged: .*loss became"):
        Trainer(task, config).run_epoch()
    # and the worker, which never raises for a trial's own trouble, says so in its reply
    settings = WorkerSettings("digits_mlp", {}, 0, 1, training=TrainingOptions(batch_size=64))
    reply = Worker(settings).step(config.to_dict())
    assert isinstance(reply, Stopped) and reply.kind == "diverged"
    assert reply.reason.startswith("diverged: ") and "loss became" in reply.reason


def test_reports_carry_each_groups_lr():
    task = resolve_task("char_rnn", seed=0, options=None)
    config = TrialConfig.from_dict(
        {
            "scheme": "module_type",
            "groups": {
                "embedding": {"optimizer": "adamw", "lr": 1e-3},
                "recurrent": {"optimizer": "sgd", "lr": 0.1},
                "linear": {"optimizer": "adamw", "lr": 2e-3},
            },
        }
    )
    trainer = Trainer(task, config, steps_per_epoch=3, batch_size=8)
    report = trainer.run_epoch()
    assert report.lrs == {"embedding": 1e-3, "recurrent": 0.1, "linear": 2e-3}
    assert report.step == 3 and math.isfinite(report.train_loss)


def test_user_task_by_module_function():
    task = resolve_task("user_tasks:tiny", {"hidden": 4}, seed=0)
    assert task.build_model()[0].out_features == 4


def test_a_lazy_model_is_materialized_before_it_is_partitioned_or_trained():
    """nn.LazyLinear and friends get their shapes at the first forward pass, and torch asks for
    that pass before an optimizer is built: the task does it, on two validation samples in
    eval mode, so batch statistics do not move and the result is the seed's alone."""
    from groupwise.partition import partition

    task = resolve_task("user_tasks:lazy", seed=0)
    torch.manual_seed(3)
    model = task.make_model()
    assert model.training and model[0].weight.shape == (16, 8) and model[4].weight.shape == (2, 8)
    assert torch.equal(model[1].running_mean, torch.zeros(16))
    assert list(partition(model, "role")) == ["matrix", "head", "vector"]
    config = TrialConfig.from_dict(
        {
            "scheme": "role",
            "groups": {k: {"optimizer": "adamw", "lr": 1e-2} for k in ("matrix", "head", "vector")},
        }
    )
    assert _final(task, config, 3) == _final(task, config, 3)
    with pytest.raises(Exception, match=r"'0.weight' is uninitialized .*run one forward pass"):
        partition(task.build_model(), "role")


@pytest.mark.parametrize(
    ("ref", "options", "fragment"),
    [
        ("digits", None, "unknown task 'digits'"),
        ("no_such_module:fn", None, "cannot import module 'no_such_module'"),
        ("user_tasks:missing", None, "has no function 'missing'"),
        ("user_tasks:not_a_task", None, "returned dict"),
        ("digits_mlp", {"hiden": 3}, "takes options [hidden]; got option 'hiden'"),
    ],
)
def test_bad_task_references(ref, options, fragment):
    with pytest.raises(TaskError) as info:
        resolve_task(ref, options).build_model()
    assert fragment in str(info.value)
