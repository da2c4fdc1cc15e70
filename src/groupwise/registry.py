"""One registry style for every extension point: optimizers, schemes, tasks, samplers, pruners.

A :class:`Registry` maps names to entries. An unknown name is an error that lists the known
ones (and the closest match); registering a different entry under a taken name is refused.
:func:`check_options` is the one check of "options this callable accepts", so a study file's
misspelt option reads the same whichever extension point it went to.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from groupwise import _yaml
from groupwise.errors import ConfigError, GroupwiseError, UnknownNameError

__all__ = ["Registry", "accepted_options", "check_options", "key_values"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, for one kind of thing (``kind`` names it in errors)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry``; the same entry again is a no-op, another one is refused."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} needs a non-empty name; got {name!r}")
        held = self._entries.get(name)
        if held is not None and held is not entry and held != entry:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str, where: str = "") -> T:
        """The entry called ``name``; :class:`UnknownNameError` listing the known names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self._entries, where) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def accepted_options(
    function: Callable[..., Any], *, skip: Iterable[str] = (), keyword_only: bool = False
) -> list[str] | None:
    """The keyword options ``function`` takes, in signature order; None if it takes ``**kw``.

    ``skip`` leaves out arguments the caller supplies itself (``self``, ``params``, ``seed``);
    ``keyword_only`` counts only keyword-only arguments (a scheme's options).
    """
    skipped = {"self", *skip}
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [
        p.name
        for p in parameters
        if p.name not in skipped
        and p.kind is not p.VAR_POSITIONAL
        and (p.kind is p.KEYWORD_ONLY or not keyword_only)
    ]


def check_options(
    kind: str,
    name: str,
    given: Mapping[str, Any] | Iterable[str],
    accepted: list[str] | None,
    error: type[GroupwiseError] | type[ValueError],
    where: str = "",
) -> None:
    """Refuse an option ``accepted`` does not list (None accepts anything), naming the rest."""
    if accepted is None:
        return
    for key in given:
        if key not in accepted:
            takes = f"takes options [{', '.join(accepted)}]" if accepted else "takes no options"
            prefix = f"{where}: " if where else ""
            hint = difflib.get_close_matches(str(key), accepted, n=1)
            guess = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise error(f"{prefix}{kind} {name!r} {takes}; got option {key!r}{guess}")


VALUES_LIMIT = 100  # values one KEY=VALUE may hold once YAML aliases are expanded


def key_values(pairs: list[str], where: str) -> dict[str, Any]:
    """``["width=512", "parametrization=mup"]`` -> ``{"width": 512, ...}``, each value read
    as YAML; ConfigError naming ``where`` for a pair that is not KEY=VALUE, or a value that
    holds more than a task option should (a YAML alias bomb)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where}: {pair[:80]!r}: write KEY=VALUE, e.g. width=512")
        try:
            parsed = _yaml.load(value) if value else ""
        except _yaml.YAMLError:
            parsed = value
        if _yaml.size(parsed, VALUES_LIMIT) > VALUES_LIMIT:
            raise ConfigError(
                f"{where}: {key.strip()[:80]!r}: the value holds more than {VALUES_LIMIT} values; "
                "give a number, a word or a short list"
            )
        options[key.strip()] = parsed
    return options
