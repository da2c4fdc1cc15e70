"""One TrialConfig per trial, define-by-run: the scheme (and its options) first, then the
groups' optimizers and settings, by the space's parametrization."""

from __future__ import annotations

import dataclasses

from groupwise.config import TrialConfig
from groupwise.sampling._absolute import sample_absolute
from groupwise.sampling._facts import PartitionFacts, Variant
from groupwise.sampling._relative import sample_relative
from groupwise.sampling._schedule import sample_schedule
from groupwise.sampling._suggest import Suggester, suggest
from groupwise.studyfiles import SearchSpace

__all__ = ["sample", "sample_scheme"]


def sample(trial: Suggester, space: SearchSpace, facts: PartitionFacts) -> TrialConfig:
    """Draw one TrialConfig: the scheme, the groups, then the schedule (if the space has one)."""
    variant = sample_scheme(trial, facts)
    if space.sharing.relative is not None:
        config = sample_relative(trial, space, facts, variant)
    else:
        config = sample_absolute(trial, space, facts, variant)
    schedule, clip = sample_schedule(trial, space)
    if schedule is None:
        return config
    return dataclasses.replace(config, schedule=schedule, grad_clip_norm=clip)


def sample_scheme(trial: Suggester, facts: PartitionFacts) -> Variant:
    """``scheme``, then one parameter per searched option (``depth.blocks``)."""
    scheme_key = trial.suggest_categorical("scheme", list(facts.scheme_keys))
    scheme_name = scheme_key.split("(")[0]
    options = {
        option: suggest(trial, f"{scheme_name}.{option}", domain)
        for option, domain in facts.option_ranges[scheme_key].items()
    }
    return facts.variant(scheme_key, options)
