"""Searching with the Hugging Face Trainer: a tiny GPT-2 (built from a config, no download)
trained as a character language model on text that ships with Python.

    pip install 'groupwise[hf]'
    groupwise launch examples/hf_trainer/study.yaml   # from the repository root

The Trainer gets the trial's optimizer and scheduler (``optimizers=``) and a callback that
reports each evaluation; the study's metric is the Trainer's ``eval_loss``.
"""

from __future__ import annotations

import inspect
import string

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import groupwise
from groupwise.integrations.hf import ReportCallback, optimizers

VOCAB = string.printable


class Windows(torch.utils.data.Dataset):
    """Fixed windows of a token stream, each its own labels (the model shifts them)."""

    def __init__(self, tokens: torch.Tensor, context: int) -> None:
        self.windows = tokens[: len(tokens) // context * context].view(-1, context)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.windows[i], "labels": self.windows[i]}


def data(context: int) -> tuple[Windows, Windows]:
    import calendar
    import fractions

    text = inspect.getsource(calendar) + inspect.getsource(fractions)
    tokens = torch.tensor([VOCAB.index(c) for c in text if c in VOCAB])
    cut = int(0.9 * len(tokens))
    return Windows(tokens[:cut], context), Windows(tokens[cut:], context)


def train(trial: groupwise.Trial) -> None:
    options = trial.options
    context = options.get("context", 64)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(VOCAB),
            n_positions=context,
            n_embd=options.get("width", 64),
            n_layer=options.get("layers", 2),
            n_head=4,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    train_set, eval_set = data(context)
    args = TrainingArguments(
        output_dir=f"/tmp/groupwise-hf-{trial.seed}",
        num_train_epochs=options.get("epochs", 3),
        max_steps=options.get("steps", 60),
        per_device_train_batch_size=32,
        per_device_eval_batch_size=64,
        eval_strategy="steps",
        eval_steps=options.get("eval_every", 20),
        max_grad_norm=trial.config.grad_clip_norm or 0.0,
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=trial.device.type != "cuda",
        seed=trial.seed,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        optimizers=optimizers(trial, model, args, train_set),
        callbacks=[ReportCallback(trial)],
    )
    trainer.train()
