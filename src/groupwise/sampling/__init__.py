"""Sampling: a trial + SearchSpace + partition facts -> TrialConfig. The only caller of
suggest_* (in ``_suggest``); ``encode`` is its inverse, for configs a study is handed.

Rules, and why:

- Parameter names are stable: ``scheme``, one name per scheme option (``depth.blocks``),
  ``<label>.optimizer``, ``<label>.<hyperparameter>``; with shared choices ``optimizer``,
  ``lr``, ``<hyperparameter>``; layer-wise decay ``lr`` and ``lr_decay``. The same label in
  two schemes shares its parameters, so the sampler learns across schemes.
- Validity-aware: a label is only offered optimizers whose constraints every tensor it can
  hold meets (torch's Muon: 2-D only). Facts are computed once per study, over every scheme
  variant the space allows, so a parameter's choices never change between trials (Optuna
  requires that of categorical parameters).
- Schemes that would make more groups than ``sharing.max_groups`` are never offered.
- Canonical key: two configs that give every parameter the same optimizer and settings
  train identically, whatever their schemes; the key lets the driver reuse the first result
  instead of training the same thing twice.
"""

from groupwise.sampling._encode import NotRepresentableError, encode
from groupwise.sampling._facts import PartitionFacts, Variant, partition_facts
from groupwise.sampling._keys import canonical_key, groups_of
from groupwise.sampling._relative import BASE_LR, base_kinds
from groupwise.sampling._sample import sample
from groupwise.sampling._suggest import Suggester

__all__ = [
    "BASE_LR",
    "NotRepresentableError",
    "PartitionFacts",
    "Suggester",
    "Variant",
    "base_kinds",
    "canonical_key",
    "encode",
    "groups_of",
    "partition_facts",
    "sample",
]
