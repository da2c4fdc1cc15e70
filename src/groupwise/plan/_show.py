"""How schemes split a task's model, as text: ``groupwise partition``. The partitions are the
ones a study would sample from (the partition facts), so what is shown is what is searched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from groupwise import _yaml
from groupwise.errors import SpecError
from groupwise.partition import summarize, trainable_parameters
from groupwise.sampling import partition_facts
from groupwise.studyfiles import SearchSpace, read_study
from groupwise.studyfiles._load import describe
from groupwise.tasks import resolve_task

__all__ = ["show_partitions"]

# Every built-in scheme at its defaults, but by_name (it needs patterns to mean anything).
DEFAULT_SCHEMES: tuple[Any, ...] = ("single", "module_type", "decay_split", "role", "depth")


def show_partitions(
    ref: str, schemes: Sequence[str], options: Mapping[str, Any], *, names: bool = True
) -> list[str]:
    """Blocks of text: the model, then per scheme its groups (tensors, parameters, shapes,
    and with ``names`` each tensor), then what the schemes say of this model. ``ref`` is a
    task reference, or a study file (its task, options and data seed, its space's schemes
    unless ``schemes`` are given); ``schemes`` are names or YAML mappings."""
    seed, data_seed, given = 0, 0, [_yaml.load(s) for s in schemes]
    if ref.endswith((".yaml", ".yml")) and Path(ref).is_file():
        spec = read_study(ref)
        seed, data_seed = spec.seed, spec.task.data_seed
        ref, options = spec.task.name, {**spec.task.options, **options}
        space = _space(given, "--scheme") if given else spec.space
    else:
        space = _space(given or list(DEFAULT_SCHEMES), "--scheme")
    task = resolve_task(ref, options, seed=data_seed)
    torch.manual_seed(seed)
    model = task.make_model()
    facts = partition_facts(model, space, source="--scheme")
    tensors = trainable_parameters(model)
    blocks = [
        f"task {ref}: {type(model).__name__}, {len(tensors)} trainable tensors, "
        f"{sum(t.numel for t in tensors):,} parameters"
    ]
    shapes = {t.name: tuple(t.param.shape) for t in tensors}
    for variant in facts.variants.values():
        count = len(variant.groups)
        lines = [f"scheme {variant.choice} ({count} group{'' if count == 1 else 's'})"]
        lines.append(str(summarize(model, variant.groups)))
        for label, members in variant.groups.items() if names else ():
            lines.append(f"  {label}: " + ", ".join(f"{n} {shapes[n]}" for n in members))
        blocks.append("\n".join(lines))
    blocks += [f"note: {note}" for note in facts.notes]
    return blocks


def _space(schemes: list[Any], where: str) -> SearchSpace:
    """The schemes as a search space's (their options checked as a space file's are)."""
    try:
        return SearchSpace.model_validate({"schemes": schemes, "optimizers": {"adamw": {}}})
    except ValidationError as e:
        raise SpecError(describe(e, Path(where))) from e
