"""Training: Task + TrialConfig -> one EpochReport per call (the built-in loop, ``_loop``), or a
function task's own training run a report at a time (``_function``). No Optuna, SQL or Ray."""

from groupwise.training._batched import (
    BatchedTrainer,
    batch_check,
    batch_key,
    unbatchable_config,
)
from groupwise.training._function import (
    FunctionRun,
    Returned,
    Trial,
    dry_run,
    probe_model,
    stand_in,
)
from groupwise.training._loop import (
    DivergedError,
    EpochReport,
    Trainer,
    TrainingOptions,
    check_step,
)
from groupwise.training._memory import PeakMemory

__all__ = [
    "BatchedTrainer",
    "DivergedError",
    "EpochReport",
    "FunctionRun",
    "PeakMemory",
    "Returned",
    "Trainer",
    "TrainingOptions",
    "Trial",
    "batch_check",
    "batch_key",
    "check_step",
    "dry_run",
    "probe_model",
    "stand_in",
    "unbatchable_config",
]
