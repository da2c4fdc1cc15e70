"""The optional optimizers (pip install "groupwise[optimizers]"): schedule-free AdamW switches
modes around evaluation and survives a checkpoint; without the extra, asking for one is a
one-line error naming it. (Their registry records and bit-for-bit equivalence with each
library's own optimizer are covered by the tests parametrized over the registry.)"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from groupwise import build_optimizer, get_optimizer
from groupwise.tasks import resolve_task
from groupwise.training import Trainer

schedulefree = pytest.importorskip("schedulefree")

SF = {"scheme": "single", "groups": {"all": {"optimizer": "sfadamw", "lr": 0.01}}}


def batch(step):
    g = torch.Generator().manual_seed(step)
    return torch.randint(0, 40, (3, 8), generator=g)


def steps(model, optimizer, numbers):
    optimizer.train()
    for step in numbers:
        optimizer.zero_grad()
        model(batch(step)).logsumexp(-1).mean().backward()
        optimizer.step()


def test_modes_switch_the_weights_as_the_library_does():
    ours = zoo.TinyTransformer()
    theirs = zoo.twin(ours)
    optimizer = build_optimizer(ours, SF)
    reference = schedulefree.AdamWScheduleFree(theirs.parameters(), lr=0.01)
    steps(ours, optimizer, range(5))
    steps(theirs, reference, range(5))
    trained = zoo.twin(ours)
    optimizer.eval()
    reference.eval()
    assert zoo.params_equal(ours, theirs)
    assert not zoo.params_equal(ours, trained)  # evaluation uses the averaged weights
    optimizer.train()
    reference.train()
    assert zoo.params_equal(ours, theirs)  # back, exactly as the library comes back
    for a, b in zip(ours.parameters(), trained.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # to the weights it steps (up to rounding)


def test_the_trainer_evaluates_in_eval_mode_and_trains_in_train_mode():
    task = resolve_task("digits_mlp", seed=0)
    config = {"scheme": "single", "groups": {"all": {"optimizer": "sfadamw", "lr": 0.003}}}
    trainer = Trainer(task, build_optimizer_config(config), steps_per_epoch=5)
    trainer.run_epoch()
    (inner,) = trainer.optimizer.optimizers.values()
    assert inner.param_groups[0]["train_mode"] is False  # left as evaluation found it
    trainer.run_epoch()  # and stepping again switched back first (it raises otherwise)


def build_optimizer_config(config):
    from groupwise.config import TrialConfig

    return TrialConfig.from_dict(config)


def test_a_schedule_free_checkpoint_resumes_exactly():
    torch.manual_seed(3)
    straight = zoo.TinyTransformer()
    resumed_model = zoo.twin(straight)
    optimizer = build_optimizer(straight, SF)
    steps(straight, optimizer, range(10))
    optimizer.eval()  # a checkpoint is usually taken after evaluating
    buffer = io.BytesIO()
    torch.save({"model": straight.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    steps(straight, optimizer, range(10, 20))

    resumed_model.load_state_dict(saved["model"])
    resumed = build_optimizer(resumed_model, SF)
    resumed.load_state_dict(saved["optimizer"])
    steps(resumed_model, resumed, range(10, 20))
    assert zoo.params_equal(resumed_model, straight)


BLOCKED = """
import sys
sys.modules["pytorch_optimizer"] = None  # as if the extra were not installed
sys.argv = ["groupwise", "validate", {space!r}]
from groupwise.cli import main
main()
"""


def test_without_the_extra_asking_for_one_is_a_one_line_error(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("schemes: [single]\noptimizers: {lion: {}}\n")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED.format(space=str(space))],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "optimizer 'lion' comes from the optional package 'pytorch-optimizer'" in lines[0]
    assert 'pip install "groupwise[optimizers]"' in lines[0]


def test_nadamw_is_nadam_with_decoupled_weight_decay():
    spec = get_optimizer("nadamw")
    assert spec.cls is torch.optim.NAdam and spec.fixed == {"decoupled_weight_decay": True}
    assert "decoupled_weight_decay" not in spec.accepts
    built = build_optimizer(
        zoo.MyModel(), {"scheme": "single", "groups": {"all": {"optimizer": "nadamw"}}}
    )
    assert built.param_groups[0]["decoupled_weight_decay"] is True
