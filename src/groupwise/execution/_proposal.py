"""What the driver makes of a new trial before it trains: its sampled config, the key that
finds identical configs, its groups as rows, and whether it can fit in memory at all."""

from __future__ import annotations

import dataclasses
import math

from groupwise.config import TrialConfig
from groupwise.execution._admission import estimate_memory
from groupwise.sampling import PartitionFacts, Suggester, canonical_key, groups_of, sample
from groupwise.store import GroupFacts, Proposal, Refusal
from groupwise.studyfiles import SearchSpace

__all__ = ["propose"]


def propose(
    trial: Suggester,
    space: SearchSpace,
    facts: PartitionFacts,
    memory_budget: int | None,
    clip: float | None = None,
) -> Proposal:
    """Sample ``trial`` and describe it for the ledger (``memory_budget``: bytes, or None;
    ``clip``: the study's gradient clip norm, which the config records, so that an exported
    config clips as its trial did)."""
    config = sample(trial, space, facts)
    if clip is not None and config.grad_clip_norm is None:
        config = dataclasses.replace(config, grad_clip_norm=clip)
    return Proposal(
        config=config.to_dict(),
        config_json=config.to_json(),
        canonical=canonical_key(config, facts),
        groups=_group_facts(config, facts),
        refusal=_admit(config, facts, memory_budget),
    )


def _group_facts(config: TrialConfig, facts: PartitionFacts) -> list[GroupFacts]:
    return [
        GroupFacts(
            label=label,
            parameter_names=names,
            parameter_count=sum(math.prod(facts.tensors[n][0]) for n in names),
        )
        for label, names in groups_of(config, facts).items()
    ]


def _admit(config: TrialConfig, facts: PartitionFacts, budget: int | None) -> Refusal | None:
    """Refuse a trial sure not to fit in ``budget`` bytes (parameters, gradients, state)."""
    if budget is None:
        return None
    need = estimate_memory(config, facts)
    if need.total <= budget:
        return None
    return Refusal(
        reason=f"out of memory (not started): needs about {need.total / 2**20:.1f} MiB for "
        f"parameters, gradients and optimizer state ({need.optimizer_state / 2**20:.1f} MiB "
        f"of it state); a trial may use {budget / 2**20:.1f} MiB",
        over=need.total / budget - 1.0,
    )
