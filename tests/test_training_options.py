"""Training as users train: mixed precision, clipping, accumulation and torch.compile in the
built-in loop, each against what torch itself does."""

from __future__ import annotations

import copy

import pytest
import torch

from groupwise.config import TrialConfig
from groupwise.optim import build
from groupwise.tasks import resolve_task
from groupwise.training import Trainer, TrainingOptions

ADAMW = TrialConfig.from_dict(
    {"scheme": "single", "groups": {"all": {"optimizer": "adamw", "lr": 0.01}}}
)


def trained(options: TrainingOptions, config: TrialConfig = ADAMW, device: str = "cpu"):
    trainer = Trainer(resolve_task("digits_mlp"), config, seed=3, options=options, device=device)
    reports = [trainer.run_epoch() for _ in range(options.epochs)]
    return trainer, reports


def test_bf16_trains_on_a_cpu_close_to_fp32():
    """bf16 autocast (8 bits of mantissa) against fp32 over 2 epochs of 20 steps: the same
    curve to within 3% of the loss (stated tolerance), and not bit for bit the same run."""
    base = TrainingOptions(epochs=2, steps_per_epoch=20, batch_size=64)
    _, full = trained(base)
    _, half = trained(TrainingOptions(**{**base.__dict__, "precision": "bf16"}))
    for a, b in zip(full, half, strict=True):
        assert b.metrics["val_loss"] == pytest.approx(a.metrics["val_loss"], rel=0.03)
        assert b.train_loss == pytest.approx(a.train_loss, rel=0.03)
    assert full[-1].metrics["val_loss"] != half[-1].metrics["val_loss"]
    assert half[-1].training["precision"] == "bf16"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with a GradScaler needs a GPU")
def test_fp16_with_a_grad_scaler_on_a_gpu_close_to_fp32():
    base = TrainingOptions(epochs=2, steps_per_epoch=20, batch_size=64)
    _, full = trained(base, device="cuda")
    trainer, half = trained(
        TrainingOptions(**{**base.__dict__, "precision": "fp16"}), device="cuda"
    )
    assert trainer.scaler.is_enabled()
    for a, b in zip(full, half, strict=True):
        assert b.metrics["val_loss"] == pytest.approx(a.metrics["val_loss"], rel=0.03)


def test_clipping_is_torchs_clip_grad_norm_on_the_same_gradients():
    """One step of the built-in loop with a clip norm equals, bit for bit, the same step
    written by hand with torch.nn.utils.clip_grad_norm_."""
    options = TrainingOptions(epochs=1, steps_per_epoch=1, batch_size=64, grad_clip_norm=0.05)
    task = resolve_task("digits_mlp")
    torch.manual_seed(3)
    model = task.make_model()
    by_hand = copy.deepcopy(model)
    trainer, _ = trained(options)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), by_hand.state_dict().values(), strict=True)
    )

    optimizer, _ = build(by_hand, ADAMW, total_steps=1)
    x, y = next(
        iter(task.data.train_batches(torch.Generator().manual_seed(3 * 1_000_003 + 1), 64, 1))
    )
    loss = task.loss(by_hand(x), y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(by_hand.parameters(), 0.05)
    assert norm > 0.05  # the clip really clipped
    optimizer.step()
    mine = dict(trainer.model.named_parameters())
    for name, p in by_hand.named_parameters():
        assert torch.equal(mine[name], p), name


def test_accumulating_k_batches_of_b_is_one_step_on_a_batch_of_k_times_b():
    """4 micro-batches of 8 against one batch of 32 (the same samples, in the same order):
    the same step, to float tolerance (the sum of means is not summed in the same order)."""
    one, _ = trained(TrainingOptions(epochs=1, steps_per_epoch=3, batch_size=32))
    four, _ = trained(TrainingOptions(epochs=1, steps_per_epoch=3, batch_size=8, accumulate=4))
    assert one.step == four.step == 3
    for (name, a), b in zip(one.model.named_parameters(), four.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_a_run_knows_its_total_steps_up_front():
    trainer, reports = trained(TrainingOptions(epochs=2, batch_size=100, accumulate=3))
    # digits: 1,437 training samples -> 15 batches of 100 -> 5 steps of 3 per epoch
    assert trainer.steps_per_epoch == 5 and trainer.total_steps == 10
    assert reports[-1].step == 10 and reports[-1].training["total_steps"] == 10


def test_compile_trains_as_eager_does():
    """torch.compile of the model, once per trial: the same first-epoch losses as eager to a
    stated tolerance (1e-4: compiled kernels may fuse and reorder), its compile time recorded
    apart from the training time."""
    base = TrainingOptions(epochs=1, steps_per_epoch=5, batch_size=64)
    _, eager = trained(base)
    trainer, compiled = trained(TrainingOptions(**{**base.__dict__, "compile": True}))
    assert compiled[0].train_loss == pytest.approx(eager[0].train_loss, rel=1e-4)
    assert compiled[0].metrics["val_loss"] == pytest.approx(eager[0].metrics["val_loss"], rel=1e-4)
    assert compiled[0].training["compile"] is True and compiled[0].training["compile_s"] > 0
    assert trainer.compile_s > 0
