"""The base of every spec model: immutable, and unknown keys are errors (a misspelt key in
a study file must not be silently ignored)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Frozen"]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
