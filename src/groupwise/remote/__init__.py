"""The CLI as a client of the service (``--server URL``): the same commands, answered by a
``groupwise serve`` elsewhere.

``_client`` speaks HTTP (standard library only; the token comes from ``GROUPWISE_API_TOKEN``;
a refusal is the server's own one-line error). ``_commands`` turns the service's answers into
the records the local commands produce (``StudyStatus``, ``BestTrial``, ``TrialConfig``,
``Progress``), so the CLI renders a remote study exactly as a local one.
"""

from groupwise.remote._client import TOKEN_ENV, Remote
from groupwise.remote._commands import (
    Followed,
    best_trials,
    compared_studies,
    comparison,
    follow,
    report,
    study_names,
    study_statuses,
    submit,
    tally_of,
    transferred_config,
    trial_config,
)

__all__ = [
    "TOKEN_ENV",
    "Followed",
    "Remote",
    "best_trials",
    "compared_studies",
    "comparison",
    "follow",
    "report",
    "study_names",
    "study_statuses",
    "submit",
    "tally_of",
    "transferred_config",
    "trial_config",
]
