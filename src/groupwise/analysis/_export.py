"""All runs, or all epochs, of a study as flat rows: CSV or JSON, for the ``csv`` module or
pandas (``pd.read_csv("runs.csv")`` after ``groupwise export STUDY --runs -o runs.csv``).

Runs come from groupwise's tables: one row per attempt, with where and how long it ran, and
from its trial's config (the trial records it): the scheme and one column per group setting
(``<label>.optimizer``, ``<label>.lr``, ...). Epochs: one row per trained epoch with the
loss, metrics and each group's lr (``lr.<label>``).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from groupwise.config import TrialConfig
from groupwise.errors import ConfigError
from groupwise.store import epochs_of, open_study, runs_of

__all__ = ["FORMATS", "epoch_rows", "run_rows", "write_rows"]

FORMATS = (".csv", ".json")


_RUN_COLUMNS = (
    "attempt",
    "retry_of",
    "state",
    "value",
    "reason",
    "duplicate_of",
    "driver",
    "host",
    "pid",
    "node",
    "device",
    "gpu_ids",
    "visible_devices",
    "started_at",
    "ended_at",
    "wall_s",
    "peak_memory_bytes",
    "training",
)


def run_rows(study: str, storage: str | None = None) -> list[dict[str, Any]]:
    open_study(study, storage)  # a one-line error for a study that is not there
    rows = []
    for run in runs_of(storage, study):
        row: dict[str, Any] = {"study": run["study"], "trial": run["trial_number"]}
        row |= {key: _cell(run[key]) for key in _RUN_COLUMNS}
        row["started_at"], row["ended_at"] = _iso(run["started_at"]), _iso(run["ended_at"])
        config = run["config"]
        row["scheme"] = None if config is None else str(TrialConfig.from_dict(config).scheme)
        for label, group in sorted((config or {}).get("groups", {}).items()):
            for key, value in group.items():
                row[f"{label}.{key}"] = _cell(value)
        row["config"] = json.dumps(config, sort_keys=True)
        rows.append(row)
    return rows


def epoch_rows(study: str, storage: str | None = None) -> list[dict[str, Any]]:
    open_study(study, storage)
    rows = []
    for epoch in epochs_of(storage, study):
        row: dict[str, Any] = {"study": study, "trial": epoch["trial"], "epoch": epoch["epoch"]}
        row |= {k: epoch[k] for k in ("train_loss", "val_loss", "metric", "elapsed_s")}
        row |= {k: v for k, v in sorted(epoch["metrics"].items()) if k not in row}
        row |= {f"lr.{label}": lr for label, lr in sorted(epoch["lrs"].items())}
        rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    """A list (betas, GPU ids) or a mapping (how it trained) as JSON text: one CSV cell, the
    same in JSON."""
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def _iso(moment: dt.datetime | None) -> str | None:
    """UTC, ISO 8601 with its offset (SQLite returns the stored UTC time without one)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """CSV (columns: every key any row has, in first-seen order) or JSON (a list of rows)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ConfigError(
            f"{path}: cannot tell the format from {path.suffix or 'no suffix'!r}; "
            f"name the file .csv or .json"
        )
    try:
        with path.open("w", newline="") as f:
            if path.suffix == ".json":
                json.dump(list(rows), f, indent=1)
            else:
                columns = list(dict.fromkeys(key for row in rows for key in row))
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
    return path
