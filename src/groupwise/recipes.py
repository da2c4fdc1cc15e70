"""Recipes: named, known-good configs, adapted to a model's partition, that a study tries first.

A search that starts from nothing spends its first trials on random configs. Most models
already have a few configs worth trying: one AdamW everywhere; AdamW without weight decay on
biases and norms (nanoGPT's and Hugging Face's split); Muon on the hidden matrices
(modded-nanogpt); layer-wise lr decay. A study lists them under ``warm_start:`` (study or
space file); each is built for the study's model from its partition facts, encoded into the
space's parameters, and enqueued before the sampler proposes anything. A recipe that does not
fit (no hidden matrices for Muon, a scheme the space does not offer, a setting outside the
space's ranges) is skipped with the reason.

What a recipe knows is its structure: which groups get decay, Muon, a slower lr. What it cannot
know is the lr that suits this model at this training length: the published lrs were tuned
for long runs of other models, and the best lr moves by an order of magnitude with width,
depth and the number of steps. So where a study lists a recipe that *leads* (``lr_sweep``: a
coarse lr sweep of AdamW everywhere), the structural recipes *follow* in a relative space: they
join the queue only after the leading ones have finished, at the base lr of the best trial so
far. A practitioner does the same: find the lr of the simple thing first, then try the tricks
at that lr. Not the default of per_group.yaml: measured, it finds good configs sooner but not
the best one sooner (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from groupwise.config import GroupConfig, SchemeChoice, TrialConfig
from groupwise.domains import FloatRange
from groupwise.errors import GroupwiseError
from groupwise.optim import get_optimizer
from groupwise.registry import Registry
from groupwise.sampling import NotRepresentableError, PartitionFacts, Variant, encode
from groupwise.studyfiles import SearchSpace

__all__ = ["RECIPES", "Recipe", "RecipeSkippedError", "adapt", "register_recipe"]


class RecipeSkippedError(GroupwiseError):
    """A recipe that does not fit this model or space; the message says why."""


@dataclass(frozen=True)
class Recipe:
    """``build`` makes the recipe's configs for a model (most make one). ``follows``: in a
    relative space, where a recipe that ``leads`` is listed too, it waits for the leading
    ones and takes the best trial's base lr (see the module's text)."""

    name: str
    description: str
    build: Callable[[SearchSpace, PartitionFacts], tuple[TrialConfig, ...]]
    follows: bool = False
    leads: bool = False


RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(recipe: Recipe) -> Recipe:
    return RECIPES.add(recipe.name, recipe)


def adapt(name: str, space: SearchSpace, facts: PartitionFacts) -> tuple[dict[str, Any], ...]:
    """The sampler parameters of recipe ``name``'s configs for this model and space; raises
    :class:`RecipeSkippedError` saying why when it does not fit."""
    recipe = RECIPES.get(name)
    try:
        configs = recipe.build(space, facts)
    except RecipeSkippedError as e:
        raise RecipeSkippedError(f"recipe {name!r}: {e}") from e
    try:
        return tuple(encode(config, space, facts) for config in configs)
    except NotRepresentableError as e:
        raise RecipeSkippedError(f"recipe {name!r} does not fit this space: {e}") from e


# -- helpers ------------------------------------------------------------------------------------
def _variant(facts: PartitionFacts, *schemes: str) -> Variant:
    """The first variant of the first of ``schemes`` the space offers (for depth, the most
    blocks); any scheme when none is named."""
    for scheme in schemes:
        found = [v for v in facts.variants.values() if v.choice.name == scheme]
        if found:
            return max(found, key=lambda v: len(v.groups))
    if not schemes:
        return next(iter(facts.variants.values()))
    raise RecipeSkippedError(
        f"for this model the space offers none of the schemes {list(schemes)} it needs (a "
        "scheme the model cannot take, such as depth with more blocks than it has layers, is "
        "left out)"
    )


def _settings(space: SearchSpace, kind: str, **wanted: Any) -> GroupConfig:
    """``kind`` with exactly the settings the space sets for it: the space's fixed values, the
    recipe's where it gives one, else the optimizer's own default."""
    if kind not in space.optimizers:
        raise RecipeSkippedError(f"the space offers no {kind}")
    defaults = get_optimizer(kind).defaults
    fixed, domains = space.fixed(kind), space.domains(kind)
    settings = {k: fixed[k] for k in fixed}
    for key, domain in domains.items():
        settings[key] = _clamped(wanted.get(key, defaults.get(key)), domain)
    return GroupConfig(kind, {k: v for k, v in settings.items() if v is not None})


def _clamped(value: Any, domain: Any) -> Any:
    """A number pulled into the space's range (Muon's "no weight decay" is a log range's
    floor, 1e-6: effectively none); a tuple item by item."""
    if isinstance(value, tuple) and hasattr(domain, "items"):
        return tuple(_clamped(v, d) for v, d in zip(value, domain.items, strict=False))
    if isinstance(value, int | float) and not isinstance(value, bool) and hasattr(domain, "low"):
        return min(max(value, domain.low), domain.high)
    return value


def _with(group: GroupConfig, **changes: Any) -> GroupConfig:
    keys = group.hyperparameters
    return GroupConfig(group.optimizer, {**keys, **{k: v for k, v in changes.items() if k in keys}})


def _config(variant: Variant, groups: Mapping[str, GroupConfig]) -> TrialConfig:
    return TrialConfig(
        SchemeChoice(variant.choice.name, dict(variant.choice.options)), dict(groups)
    )


# -- the recipes (their settings cite where they come from) ---------------------------------------
# AdamW at torch's defaults (lr 1e-3, weight decay 0.01, betas 0.9/0.999): the single-optimizer
# config every per-group search must at least match.
def _adamw(space: SearchSpace, facts: PartitionFacts) -> tuple[TrialConfig, ...]:
    return (_everywhere(space, facts, _settings(space, "adamw")),)


# A coarse lr sweep of the same config in steps of about 3x, as practitioners start a new
# model: torch's default lr is a long-run default, while a search trains small proxies for few
# steps, which favour larger lrs; so two of the three steps go up.
# The structural recipes then run at the best of these (``follows``).
LR_SWEEP = (0.3, 3.0, 10.0)


def _lr_sweep(space: SearchSpace, facts: PartitionFacts) -> tuple[TrialConfig, ...]:
    default = float(get_optimizer("adamw").defaults.get("lr", 1e-3))
    domain = space.domains("adamw").get("lr") if "adamw" in space.optimizers else None
    if not isinstance(domain, FloatRange):
        raise RecipeSkippedError("the space does not search adamw's lr")
    lrs = [default * f for f in LR_SWEEP if domain.low <= default * f <= domain.high]
    if not lrs:
        raise RecipeSkippedError(
            f"none of the lrs {[default * f for f in LR_SWEEP]} lies in the space's range "
            f"for adamw [{domain.low:g}, {domain.high:g}]"
        )
    return tuple(_everywhere(space, facts, _settings(space, "adamw", lr=lr)) for lr in lrs)


def _everywhere(space: SearchSpace, facts: PartitionFacts, adamw: GroupConfig) -> TrialConfig:
    """``adamw`` for every parameter: the single scheme where the space offers it."""
    variant = _variant(facts, "single") if "single" in _schemes(facts) else _variant(facts)
    return _config(variant, dict.fromkeys(variant.groups, adamw))


# nanoGPT's configure_optimizers and Hugging Face's Trainer: weight decay (0.1, betas 0.9/0.95
# as nanoGPT) on every tensor of 2+ dimensions, embeddings included; none on biases and norm
# gains (decay_split with its default embeddings: decay; under role, vector holds those).
_DECAY_SPLIT_EXEMPT = {"no_decay", "vector"}


def _decay_split(space: SearchSpace, facts: PartitionFacts) -> tuple[TrialConfig, ...]:
    variant = _variant(facts, "decay_split", "role")
    if variant.choice.name == "decay_split" and variant.choice.options.get("embeddings"):
        nanogpt = [  # the space searches the embeddings option: take nanoGPT's value
            v
            for v in facts.variants.values()
            if v.choice.name == "decay_split" and v.choice.options["embeddings"] == "decay"
        ]
        if not nanogpt:
            raise RecipeSkippedError("the space offers decay_split only with embeddings: no_decay")
        variant = nanogpt[0]
    adamw = _settings(space, "adamw", weight_decay=0.1, betas=(0.9, 0.95))
    groups = {
        label: _with(adamw, weight_decay=0.0) if label in _DECAY_SPLIT_EXEMPT else adamw
        for label in variant.groups
    }
    return (_config(variant, groups),)


# modded-nanogpt's AdamW groups: no decay on vectors and embeddings.
_NO_DECAY = {"no_decay", "vector", "embedding", "norm"}


# modded-nanogpt: Muon (lr 0.02, momentum 0.95, Nesterov) on hidden matrices; AdamW (betas
# 0.8/0.95, no decay on vectors and embeddings) on the rest.
def _muon_split(space: SearchSpace, facts: PartitionFacts) -> tuple[TrialConfig, ...]:
    variant = _variant(facts, "role")
    if "matrix" not in variant.groups:
        raise RecipeSkippedError("the model has no hidden matrices for Muon")
    muon = _settings(space, "muon", lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0)
    adamw = _settings(space, "adamw", betas=(0.8, 0.95))
    groups = {
        label: muon
        if label == "matrix"
        else (_with(adamw, weight_decay=0.0) if label in _NO_DECAY else adamw)
        for label in variant.groups
    }
    return (_config(variant, groups),)


# Layer-wise lr decay as in ELECTRA/BEiT fine-tuning: each block's lr 0.75 times the next one's,
# the last block at AdamW's default lr.
def _layerwise(space: SearchSpace, facts: PartitionFacts) -> tuple[TrialConfig, ...]:
    variant = _variant(facts, "depth")
    if len(variant.groups) < 2:
        raise RecipeSkippedError("depth makes a single block here: nothing to decay")
    adamw = _settings(space, "adamw")
    last = len(variant.groups) - 1
    lr = float(adamw.hyperparameters.get("lr", 1e-3))
    blocks = sorted(variant.groups, key=lambda s: int(s[5:]))
    groups = {label: _with(adamw, lr=lr * 0.75 ** (last - i)) for i, label in enumerate(blocks)}
    return (_config(variant, groups),)


def _schemes(facts: PartitionFacts) -> set[str]:
    return {v.choice.name for v in facts.variants.values()}


register_recipe(Recipe("adamw", "AdamW everywhere at torch's defaults", _adamw))
register_recipe(
    Recipe("lr_sweep", "AdamW everywhere at 0.3x, 3x, 10x its default lr", _lr_sweep, leads=True)
)
register_recipe(
    Recipe("decay_split", "AdamW, no decay on biases and norms", _decay_split, follows=True)
)
register_recipe(
    Recipe("muon_split", "Muon on hidden matrices, AdamW elsewhere", _muon_split, follows=True)
)
register_recipe(
    Recipe("layerwise_decay", "AdamW, each depth block 0.75x the next", _layerwise, follows=True)
)
