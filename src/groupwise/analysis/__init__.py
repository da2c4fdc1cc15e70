"""Reading studies: best configs, status, comparisons, exports of runs and epochs, reports.

Optuna's trials are read through its public storage API (as optuna-dashboard does);
groupwise's own tables (runs, epochs, groups) through ``groupwise.store``.
"""

from groupwise.analysis._best import (
    BestTrial,
    StudyStatus,
    best_trials,
    load_best,
    load_study,
    study_status,
    trial_config,
)
from groupwise.analysis._compare import (
    Comparison,
    GroupLr,
    OptimizerSummary,
    SchemeSummary,
    StudySummary,
    compare,
    compare_studies,
)
from groupwise.analysis._export import FORMATS, epoch_rows, run_rows, write_rows
from groupwise.analysis._report import PLOTS, Report, write_report

__all__ = [
    "FORMATS",
    "PLOTS",
    "BestTrial",
    "Comparison",
    "GroupLr",
    "OptimizerSummary",
    "Report",
    "SchemeSummary",
    "StudyStatus",
    "StudySummary",
    "best_trials",
    "compare",
    "compare_studies",
    "epoch_rows",
    "load_best",
    "load_study",
    "run_rows",
    "study_status",
    "trial_config",
    "write_report",
    "write_rows",
]
