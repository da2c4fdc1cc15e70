"""What a trial's value is, and how a study's best config is chosen.

    objective: {metric: val_loss, direction: minimize, reduce: last}  # last | best | {mean_last: k}
    confirm: {top: 3, seeds: 2}   # the leaders trained again on fresh seeds; off: confirm: off

``reduce`` turns a trial's per-epoch values into its one value: the last epoch's (the model
the user keeps when they train the config to the end), the best epoch's (the user keeps the
best checkpoint), or the mean of the last k (less noise from where the last epoch happened to
land). Pruning reads each epoch's value whatever the reduce.

``confirm``: after the search, the ``top`` configs are trained again with ``seeds`` fresh
training seeds each (initialisation and batch order; the data's split stays), and the study's
best is the config with the best mean over those seeds. A study's best single trial is the
luckiest of many draws of a noisy number; a mean over seeds it was not chosen on is what the
user will get.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from groupwise.studyfiles._frozen import Frozen

__all__ = ["Confirm", "Objective"]

_MEAN_LAST = re.compile(r"^mean_last:\s*(\d+)$")
REDUCE_FORMS = "last, best, or {mean_last: k} (k >= 1)"


class Objective(Frozen):
    metric: str = "val_loss"
    direction: Literal["minimize", "maximize"] = "minimize"
    # "last", "best" or "mean_last:k" (a study file may write {mean_last: k})
    reduce: str = "last"

    @field_validator("reduce", mode="before")
    @classmethod
    def _reduce(cls, value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"mean_last"}:
            value = f"mean_last:{value['mean_last']}"
        text = value.strip() if isinstance(value, str) else None
        match = _MEAN_LAST.match(text or "")
        if text in ("last", "best"):
            return text
        if match and int(match.group(1)) >= 1:
            return f"mean_last:{int(match.group(1))}"
        raise ValueError(f"allowed: {REDUCE_FORMS}")

    @property
    def window(self) -> int:
        """How many of the last epochs ``mean_last`` averages (1 otherwise)."""
        return int(self.reduce.split(":")[1]) if self.reduce.startswith("mean_last") else 1

    def value_of(self, values: Sequence[float]) -> float:
        """A trial's value from its per-epoch values, in epoch order."""
        if not values:
            raise ValueError("a trial's value needs at least one epoch")
        if self.reduce == "last":
            return float(values[-1])
        if self.reduce == "best":
            return float(min(values) if self.direction == "minimize" else max(values))
        return float(statistics.fmean(values[-self.window :]))


class Confirm(Frozen):
    """``top`` configs, each trained again on ``seeds`` fresh seeds (``top: 0``: off)."""

    top: int = Field(default=0, ge=0, le=100)
    seeds: int = Field(default=0, ge=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _off(cls, data: Any) -> Any:
        if data is False or (isinstance(data, str) and data.strip().lower() in ("off", "none")):
            return {"top": 0, "seeds": 0}
        if isinstance(data, str | bool | int | float):
            raise ValueError(
                "give {top: K, seeds: R} (confirm the top K configs on R fresh seeds each), or off"
            )
        return data

    @model_validator(mode="after")
    def _both(self) -> Confirm:
        if (self.top == 0) != (self.seeds == 0):
            raise ValueError(
                f"confirm has top {self.top} and seeds {self.seeds}: give both above 0 "
                "(confirm the top K configs on R fresh seeds each), or turn it off (confirm: off)"
            )
        return self

    @property
    def on(self) -> bool:
        return self.top > 0

    @property
    def trials(self) -> int:
        """The trials it adds: K x R."""
        return self.top * self.seeds
