"""A user's HF Trainer training function (``user_hf:train``): a tiny GPT-2 from a config (no
download) on a generated token stream, its optimizers from the trial, reporting through
groupwise's callback. Option ``bad_every_other``: every second trial a worker runs reports an
eval_loss of 51 (the others 1.0) through a metric hook, so a median pruner prunes it at its
first evaluation; ``marker``: a file each pruned trial appends to when TrialPruned comes out of
``trainer.train()``."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import groupwise
from groupwise.integrations.hf import ReportCallback, optimizers

_calls = 0


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        base = torch.randint(0, 16, (n, 16), generator=g)
        self.ids = torch.cat([base, base], 1)  # the second half repeats the first: learnable

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def model() -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=16,
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


def train(trial: groupwise.Trial) -> None:
    global _calls
    _calls += 1
    bad = "bad_every_other" in trial.options and _calls % 2 == 0
    net = model()
    train_set, eval_set = Tokens(64, 0), Tokens(32, 1)
    args = TrainingArguments(
        output_dir=f"/tmp/groupwise-test-hf-{trial.seed}",
        num_train_epochs=int(trial.options.get("epochs", 3)),
        per_device_train_batch_size=16,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=trial.seed,
    )

    def metrics(_: object) -> dict[str, float]:
        return {"constant": 51.0 if bad else 1.0}

    trainer = Trainer(
        model=net,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        optimizers=optimizers(trial, net, args, train_set),
        callbacks=[ReportCallback(trial)],
        compute_metrics=metrics if "bad_every_other" in trial.options else None,
    )
    try:
        trainer.train()
    except groupwise.TrialPruned:
        if trial.options.get("marker"):
            with open(trial.options["marker"], "a") as f:
                f.write(f"{round(trainer.state.epoch or 0)}\n")
        raise
