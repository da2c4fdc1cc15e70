"""A new trial's suggestions: what sampling may ask of the Optuna trial the ledger opened,
and nothing more. The ledger hands this to the caller of ``open_trial`` instead of the trial,
so execution, which passes it on to sampling, never holds an Optuna object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

__all__ = ["Suggestions"]


class Suggestions:
    """The ``suggest_*`` calls of one new trial (:class:`groupwise.sampling.Suggester`)."""

    __slots__ = ("_trial",)

    def __init__(self, trial: optuna.Trial) -> None:
        self._trial = trial

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return float(self._trial.suggest_float(name, low, high, log=log))

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        return int(self._trial.suggest_int(name, low, high, log=log))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._trial.suggest_categorical(name, choices)
