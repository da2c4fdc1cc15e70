"""The coordinate check (Tensor Programs V, D.1): train a task's model a few steps at several
widths, each width's lrs carried from the narrowest by a rule, and watch each layer's output
scale (its mean absolute coordinate). Flat across widths: the rule keeps every layer's update
in proportion, and a config should transfer. Growing with width: some layer's updates outgrow
it, and the best lr found narrow will be too large wide.

Layers are the modules that own parameters (``nn.Linear``, ``nn.LayerNorm``, an attention
module's projections, ...), and the model's output. A scale that *shrinks* with width is not
a failure: μP's output starts smaller at larger width by design; growth is what breaks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from groupwise.config import TrialConfig
from groupwise.errors import ConfigError, TaskError
from groupwise.optim import build
from groupwise.tasks import Task, resolve_task
from groupwise.transfer._transfer import transfer

__all__ = ["FLAT", "CoordCheck", "coord_check"]

FLAT = 2.0  # a layer whose scale grows less than this from narrowest to widest is flat
OUTPUT = "(output)"


@dataclass(frozen=True)
class CoordCheck:
    """Each layer's mean absolute output at each width after each step (step 0: at init)."""

    task: str
    widths: tuple[int, ...]
    steps: int
    rule: str
    layers: tuple[str, ...]
    scales: Mapping[str, tuple[tuple[float, ...], ...]]  # layer -> [step][width]

    def growth(self, layer: str, step: int | None = None) -> float:
        """The layer's scale at the widest width over the narrowest, after ``step``."""
        at = self.scales[layer][self.steps if step is None else step]
        return at[-1] / at[0] if at[0] > 0 else float("inf")

    @property
    def worst(self) -> tuple[str, float]:
        """The layer that grows most with width (over every step after the first), and by
        how much."""
        growths = {
            (layer, step): self.growth(layer, step)
            for layer in self.layers
            for step in range(1, self.steps + 1)
        }
        (layer, _), most = max(growths.items(), key=lambda item: item[1])
        return layer, most

    @property
    def flat(self) -> bool:
        return self.worst[1] < FLAT


def coord_check(
    task: str,
    widths: Sequence[int],
    *,
    options: Mapping[str, Any] | None = None,
    width_option: str = "width",
    config: TrialConfig | None = None,
    rule: str = "sp-per-layer",
    steps: int = 4,
    batch_size: int = 16,
    seed: int = 0,
) -> CoordCheck:
    """Train ``task`` (its option ``width_option`` set to each width) ``steps`` steps with
    ``config`` (default: AdamW at lr 1e-2 everywhere) carried from the narrowest width by
    ``rule``, on the same batches, and record each layer's scale."""
    if len(widths) < 2 or sorted(set(widths)) != list(widths):
        raise ConfigError(f"--widths: give two or more widths, increasing; got {list(widths)}")
    if steps < 1:
        raise ConfigError(f"--steps: must be at least 1; got {steps}")
    config = config or TrialConfig.from_dict(
        {"scheme": "single", "groups": {"all": {"optimizer": "adamw", "lr": 1e-2}}}
    )
    try:
        tasks = [
            resolve_task(task, {**(options or {}), width_option: w}, seed=seed) for w in widths
        ]
    except TaskError as e:
        if f"option {width_option!r}" not in str(e):
            raise
        raise TaskError(f"{e}; name the option that sets its width: --width-option") from e
    models = [_model(t, seed) for t in tasks]
    per_width = [
        _run(t, m, transfer(config, models[0], m, rule), steps, batch_size, seed)
        for t, m in zip(tasks, models, strict=True)
    ]
    layers = tuple(per_width[0])
    scales = {
        layer: tuple(tuple(run[layer][step] for run in per_width) for step in range(steps + 1))
        for layer in layers
    }
    return CoordCheck(task, tuple(widths), steps, rule, layers, scales)


def _model(task: Task, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return task.make_model()


def _run(
    task: Task, model: nn.Module, config: TrialConfig, steps: int, batch_size: int, seed: int
) -> dict[str, list[float]]:
    """Each layer's scale at init and after each of ``steps`` steps."""
    scales: dict[str, list[float]] = {}
    hooks = [
        module.register_forward_hook(_recorder(scales, name or OUTPUT))
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
    if not any(True for _ in model.parameters(recurse=False)):
        hooks.append(model.register_forward_hook(_recorder(scales, OUTPUT)))
    optimizer, scheduler = build(model, config, total_steps=steps)
    batches = list(
        task.data.train_batches(torch.Generator().manual_seed(seed), batch_size, steps + 1)
    )
    try:
        for step, (x, y) in enumerate(batches):
            loss = task.loss(model(x), y)
            if step == steps:
                break
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
    finally:
        for hook in hooks:
            hook.remove()
    return scales


def _recorder(scales: dict[str, list[float]], name: str) -> Any:
    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        out = output[0] if isinstance(output, tuple) else output
        if isinstance(out, Tensor) and out.is_floating_point():
            scales.setdefault(name, []).append(out.detach().abs().mean().item())

    return record
