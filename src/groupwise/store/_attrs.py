"""The names groupwise stores its data under, in namespaced Optuna user attributes (as
optuna-dashboard does). The ledger writes them; analysis and the counts read them."""

from __future__ import annotations

__all__ = [
    "ATTEMPT_ATTR",
    "CANONICAL_ATTR",
    "CONFIG_ATTR",
    "CONFIRMS_ATTR",
    "CONFIRM_ATTR",
    "DEATHS_ATTR",
    "DUPLICATE_ATTR",
    "FINGERPRINT_ATTR",
    "IDENTITY_ATTR",
    "LOST_ATTR",
    "METRIC_ATTR",
    "REASON_ATTR",
    "RECIPE_ATTR",
    "RETRIED_ATTR",
    "RETRY_OF_ATTR",
    "RUN_ATTR",
    "SEEDED_ATTR",
    "SPACE_ATTR",
    "TASK_ATTR",
    "TRAIN_SEED_ATTR",
    "TRANSFER_ATTR",
    "TRANSFER_CHECK_ATTR",
    "VOIDED_ATTR",
]

CONFIG_ATTR = "groupwise.config"  # trial: the TrialConfig as JSON
CANONICAL_ATTR = "groupwise.canonical"  # trial: equal for configs that train identically
DUPLICATE_ATTR = "groupwise.duplicate_of"  # trial: the trial whose result it reuses
REASON_ATTR = "groupwise.fail_reason"  # trial: why it failed
RUN_ATTR = "groupwise.run"  # trial: wall time, peak memory, host, node, device
ATTEMPT_ATTR = "groupwise.attempt"  # trial: 1 for a first run, n for its (n-1)th retry
RETRY_OF_ATTR = "groupwise.retry_of"  # trial: the first attempt's number
DEATHS_ATTR = "groupwise.deaths"  # retry: how many earlier attempts its own runs killed
RETRIED_ATTR = "groupwise.retried"  # failed trial: re-enqueued, so not counted toward budget
LOST_ATTR = "groupwise.lost_as"  # retry: how its previous attempt was lost
RECIPE_ATTR = "groupwise.recipe"  # trial: the warm-start recipe it was enqueued from
SEEDED_ATTR = "groupwise.seeded_from"  # trial: "<study>#<number>" it was copied from
CONFIRMS_ATTR = "groupwise.confirms"  # trial: the search trial whose config it trains again
BATCH_OF_ATTR = "groupwise.batch_of"  # trial: the trial whose structure it shares (workers.batch)
TRAIN_SEED_ATTR = "groupwise.train_seed"  # trial: its training seed, where not the study's
CONFIRM_ATTR = "groupwise.confirm"  # study: {top, seeds} of its confirmations
FINGERPRINT_ATTR = "groupwise.fingerprint"  # study: task, space, objective, training, seed
IDENTITY_ATTR = "groupwise.identity"  # study: what the fingerprint hashes, as JSON
TASK_ATTR = "groupwise.task"  # study
METRIC_ATTR = "groupwise.metric"  # study
SPACE_ATTR = "groupwise.search_space"  # study
VOIDED_ATTR = "groupwise.voided"  # study: {trial number: why} the budget does not count
TRANSFER_ATTR = "groupwise.transfer"  # study: its best config carried to its transfer target
TRANSFER_CHECK_ATTR = "groupwise.transfer_check"  # study: that config trained at the target
