"""Where studies live: Optuna's storage (opened, mirrored, reconnected), the ledger of each
trial's life, the one count of a study's trials, and, beside Optuna's tables in the same
database, groupwise's own (runs, epochs, groups, jobs; Alembic-migrated). The only stage that
speaks SQL, and the only one that touches Optuna's private API (``_internals``).

One job a module:

- ``_identity``: what makes a launch the same study (create, claim, read-only checks);
- ``_ledger``: a trial's life, each step one transaction (``_trial``: its records);
- ``_replays``: what trained, so an identical config replays it instead of training again;
- ``_warmstart``: recipes and earlier studies a study starts from;
- ``_liveness``: heartbeats, stale trials, other drivers, the service's stop request;
- ``_counts``: the one count (tally);
- ``_transfer``: a study's best config carried to its transfer target, and its check;
- ``_mirror`` (over ``_replica``): one study in memory, every write through to SQL;
- ``_reader``: a long-lived reader's mirrors (the service);
- ``_records``, ``_tables``, ``_migrate``: groupwise's tables; ``_jobs``: the service's jobs;
- ``_open``: URLs, opening, reconnecting; ``_attrs``: the attribute names;
- ``_internals``: every use of Optuna's private API.

Exported here is what the stages above call: execution (the ledger and its records),
analysis (reads, counts, attribute names) and the service and CLI (jobs, readers, URLs).
Tests reach into the private modules for the rest.
"""

from groupwise.store._attrs import (
    CONFIG_ATTR,
    CONFIRMS_ATTR,
    DUPLICATE_ATTR,
    IDENTITY_ATTR,
    METRIC_ATTR,
    REASON_ATTR,
    RETRIED_ATTR,
    SEEDED_ATTR,
    SPACE_ATTR,
    TASK_ATTR,
    TRAIN_SEED_ATTR,
    TRANSFER_ATTR,
    TRANSFER_CHECK_ATTR,
)
from groupwise.store._confirm import Confirmed, confirmed, fresh_seeds, within_noise
from groupwise.store._counts import Tally, TrialClass, classify, tally, voided_of
from groupwise.store._identity import StudyIdentity, check_source, check_study, differences
from groupwise.store._jobs import ACTIVE, FINAL, Job, Jobs, JobState
from groupwise.store._ledger import Ledger
from groupwise.store._open import (
    DEFAULT_STORAGE,
    check_exists,
    mask,
    open_storage,
    ping,
    quiet_optuna,
    resolve_url,
    study_names,
)
from groupwise.store._reader import (
    Source,
    StudyReader,
    open_study,
    opened,
    source_url,
    stored_config,
    study_names_in,
)
from groupwise.store._records import GroupFacts, RunFacts, epochs_of, has_run_tables, runs_of
from groupwise.store._transfer import record_transfer, record_transfer_check
from groupwise.store._trial import (
    Deferred,
    Ending,
    EpochFacts,
    Lost,
    Opened,
    Proposal,
    Refusal,
    Settled,
)

__all__ = [
    "ACTIVE",
    "CONFIG_ATTR",
    "CONFIRMS_ATTR",
    "DEFAULT_STORAGE",
    "DUPLICATE_ATTR",
    "FINAL",
    "IDENTITY_ATTR",
    "METRIC_ATTR",
    "REASON_ATTR",
    "RETRIED_ATTR",
    "SEEDED_ATTR",
    "SPACE_ATTR",
    "TASK_ATTR",
    "TRAIN_SEED_ATTR",
    "TRANSFER_ATTR",
    "TRANSFER_CHECK_ATTR",
    "Confirmed",
    "Deferred",
    "Ending",
    "EpochFacts",
    "GroupFacts",
    "Job",
    "JobState",
    "Jobs",
    "Ledger",
    "Lost",
    "Opened",
    "Proposal",
    "Refusal",
    "RunFacts",
    "Settled",
    "Source",
    "StudyIdentity",
    "StudyReader",
    "Tally",
    "TrialClass",
    "check_exists",
    "check_source",
    "check_study",
    "classify",
    "confirmed",
    "differences",
    "epochs_of",
    "fresh_seeds",
    "has_run_tables",
    "mask",
    "open_storage",
    "open_study",
    "opened",
    "ping",
    "quiet_optuna",
    "record_transfer",
    "record_transfer_check",
    "resolve_url",
    "runs_of",
    "source_url",
    "stored_config",
    "study_names",
    "study_names_in",
    "tally",
    "voided_of",
    "within_noise",
]
