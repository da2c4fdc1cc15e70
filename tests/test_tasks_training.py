"""Built-in tasks on real offline data, and the train loop (no Optuna, SQL or Ray)."""

from __future__ import annotations

import math

import pytest
import torch

from groupwise.config import TrialConfig
from groupwise.errors import TaskError
from groupwise.tasks import available_tasks, resolve_task
from groupwise.tasks._text import CORPUS_MODULES, corpus
from groupwise.training import Trainer, train

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
    result = train(task, ADAMW, epochs=2, steps_per_epoch=30, batch_size=32)
    assert result.state == "complete"
    losses = [r.metrics["val_loss"] for r in result.reports]
    assert losses[1] < losses[0]
    assert set(result.reports[0].metrics) == set(task.metric_names)


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


def test_same_seed_same_result():
    task = resolve_task("digits_mlp", seed=0)
    runs = [train(task, ADAMW, epochs=2, seed=7, batch_size=64) for _ in range(2)]
    assert runs[0].reports[-1].metrics == runs[1].reports[-1].metrics
    other = train(task, ADAMW, epochs=2, seed=8, batch_size=64)
    assert other.reports[-1].metrics != runs[0].reports[-1].metrics


def test_huge_lr_diverges_with_a_reason():
    task = resolve_task("digits_mlp", seed=0)
    config = TrialConfig.from_dict(
        {"scheme": "single", "groups": {"all": {"optimizer": "sgd", "lr": 1e8}}}
    )
    result = train(task, config, epochs=3)
    assert result.state == "diverged"
    assert result.reason.startswith("diverged: ")
    assert "loss became" in result.reason


def test_report_callback_can_stop_early():
    task = resolve_task("digits_mlp", seed=0)
    seen = []
    result = train(task, ADAMW, epochs=5, report=lambda r: seen.append(r.epoch) or r.epoch == 2)
    assert result.state == "pruned"
    assert seen == [1, 2]
    assert [r.epoch for r in result.reports] == [1, 2]


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
