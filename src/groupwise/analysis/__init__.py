"""Reading studies: best configs, status, comparisons, exports of runs and epochs, reports,
and the tables the CLI and the report both show.

Optuna's trials are read through its public storage API (as optuna-dashboard does);
groupwise's own tables (runs, epochs, groups) as plain data from ``groupwise.store``. Every
count is :func:`groupwise.store.tally`.
"""

from groupwise.analysis._best import (
    BestTrial,
    StudyStatus,
    best_trials,
    export_comment,
    load_best,
    noise_note,
    study_status,
    study_task,
    study_transfer,
    trial_config,
)
from groupwise.analysis._compare import (
    Comparison,
    GroupLr,
    OptimizerSummary,
    ScheduleSummary,
    SchemeSummary,
    StudySummary,
    compare,
    compare_studies,
)
from groupwise.analysis._export import FORMATS, epoch_rows, run_rows, write_rows
from groupwise.analysis._report import PLOTS, Report, write_report
from groupwise.analysis._tables import (
    Table,
    best_table,
    lr_table,
    optimizer_table,
    schedule_table,
    scheme_table,
    status_table,
    studies_table,
)
from groupwise.analysis._trials import TrialPage, best_document, trial_page

__all__ = [
    "FORMATS",
    "PLOTS",
    "BestTrial",
    "Comparison",
    "GroupLr",
    "OptimizerSummary",
    "Report",
    "ScheduleSummary",
    "SchemeSummary",
    "StudyStatus",
    "StudySummary",
    "Table",
    "TrialPage",
    "best_document",
    "best_table",
    "best_trials",
    "compare",
    "compare_studies",
    "epoch_rows",
    "export_comment",
    "load_best",
    "lr_table",
    "noise_note",
    "optimizer_table",
    "run_rows",
    "schedule_table",
    "scheme_table",
    "status_table",
    "studies_table",
    "study_status",
    "study_task",
    "study_transfer",
    "trial_config",
    "trial_page",
    "write_report",
    "write_rows",
]
