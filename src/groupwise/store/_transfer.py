"""A study's transfer target (tune small, transfer big): the best config carried to it, and
what that config scored trained there (``groupwise transfer-check``), as study attributes:
optuna-dashboard shows them beside the study, ``report`` reads them."""

from __future__ import annotations

from typing import Any

import optuna

from groupwise.store._attrs import TRANSFER_ATTR, TRANSFER_CHECK_ATTR
from groupwise.store._reader import Source, open_study

__all__ = ["record_transfer", "record_transfer_check"]


def record_transfer(study: str, storage: Source, document: dict[str, Any]) -> None:
    """The best config carried to the target: ``{trial, value, target, rule, config, notes}``.
    A new best replaces it, and with it an earlier check of another config."""
    loaded = open_study(study, storage)
    if loaded.user_attrs.get(TRANSFER_ATTR) != document:
        loaded.set_user_attr(TRANSFER_ATTR, document)
        _forget_check(loaded)


def record_transfer_check(study: str, storage: Source, document: dict[str, Any]) -> None:
    """What the carried config scored at the target: ``{metric, values, seeds, mean, ...}``."""
    open_study(study, storage).set_user_attr(TRANSFER_CHECK_ATTR, document)


def _forget_check(study: optuna.Study) -> None:
    if TRANSFER_CHECK_ATTR in study.user_attrs:
        study.set_user_attr(TRANSFER_CHECK_ATTR, None)
