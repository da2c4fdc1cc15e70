"""Which parameters a sampled config's groups hold, and the key under which configs that
train identically are equal (the driver trains such configs once)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from groupwise.config import TrialConfig
from groupwise.sampling._facts import PartitionFacts

__all__ = ["canonical_key", "groups_of"]


def groups_of(config: TrialConfig, facts: PartitionFacts) -> Mapping[str, tuple[str, ...]]:
    """Label -> parameter names, for a config sampled from this study."""
    return facts.variants[_variant_key_for(config, facts)].groups


def canonical_key(config: TrialConfig, facts: PartitionFacts) -> str:
    """Equal for configs that give every parameter the same optimizer and settings (and the
    same schedule and clip norm; a config without them keeps the key it had before they
    existed)."""
    groups = groups_of(config, facts)
    merged: dict[str, list[str]] = {}
    for label, group in config.groups.items():
        setting = json.dumps([group.optimizer, sorted(group.hyperparameters.items())], default=str)
        merged.setdefault(setting, []).extend(groups[label])
    canonical: list[object] = [
        item for item in sorted((sorted(names), setting) for setting, names in merged.items())
    ]
    if config.schedule is not None or config.grad_clip_norm is not None:  # they train apart
        schedule = config.schedule.to_data() if config.schedule else None
        canonical.append(json.dumps([schedule, config.grad_clip_norm], sort_keys=True))
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()[:20]


def _variant_key_for(config: TrialConfig, facts: PartitionFacts) -> str:
    for vid, variant in facts.variants.items():
        if variant.choice == config.scheme:
            return vid
    raise KeyError(f"scheme {config.scheme} is not a variant of this search space")
