"""A study or space file's validation errors as one line: the most useful problem first, the
others named after it, never a count standing in for what it counts.

pydantic reports one error per union member it tried (a hyperparameter may be a range, a
choice, a list or a value: an inverted range is 20+ errors at one key); those are one problem
here, told by the member that says most. A misspelt key is two errors, an unknown key and a
missing one beside it: here it is one, "did you mean".
"""

from __future__ import annotations

import difflib
import functools
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from groupwise.errors import quote

__all__ = ["describe"]

SHOWN = 3  # problems named in the line; past that, how many more


@dataclass(frozen=True)
class _Problem:
    loc: tuple[str, ...]
    text: str
    rank: int  # lower is more useful to say first


def describe(error: ValidationError, path: Path, models: dict[str, Any]) -> str:
    """``file: key.path: what is wrong (got value)``, the most useful problem first and the
    others after it; ``models`` are the spec models by title (to list the keys allowed)."""
    problems = _problems(error.errors(), error.title, models)
    first, rest = problems[0], problems[1:]
    line = f"{path}: {first.text}"
    if rest:
        named = "; ".join(p.text for p in rest[: SHOWN - 1])
        hidden = len(rest) - (SHOWN - 1)
        line += f"; also {named}" + (f"; and {hidden} more" if hidden > 0 else "")
    # one line whatever the file holds: a message quoting a value with a line break in it
    return line.replace("\r", "\\r").replace("\n", "\\n")


def _problems(errors: list[Any], title: str, models: dict[str, Any]) -> list[_Problem]:
    """Every problem once. The errors of one union (one per member pydantic tried) are one
    problem: the best their members tell."""
    unions: dict[tuple[str, ...], dict[str, list[Any]]] = {}
    plain: list[Any] = []
    names = _model_names(tuple(models.values()))
    for e in (_marked(e, names) for e in errors):
        point = _union_point(e["loc"])
        if point is None:
            plain.append(e)
        else:
            unions.setdefault(point[0], {}).setdefault(point[1], []).append(e)
    problems = _told(plain, title, models)
    for members in unions.values():
        told = [p for es in members.values() for p in _told(es, title, models)]
        problems.append(min(told, key=lambda p: p.rank))
    return sorted(problems, key=lambda p: p.rank)


def _union_point(parts: tuple[Any, ...]) -> tuple[tuple[str, ...], str] | None:
    """Where a location enters a union, and which member: None for a location in none."""
    for i, part in enumerate(parts):
        if _is_union_tag(part):
            return _loc(parts[:i]), str(part)
    return None


def _told(errors: list[Any], title: str, models: dict[str, Any]) -> list[_Problem]:
    """The problems of errors from one model: an unknown key beside a missing one it nearly
    spells is one problem ("did you mean"); a key's several errors, its most specific."""
    by_loc: dict[tuple[str, ...], list[Any]] = {}
    for e in errors:
        by_loc.setdefault(_loc(e["loc"]), []).append(e)
    missing = {loc for loc, es in by_loc.items() if any(e["type"] == "missing" for e in es)}
    problems: list[_Problem] = []
    typos: set[tuple[str, ...]] = set()
    for loc, es in by_loc.items():
        if any(e["type"] == "extra_forbidden" for e in es):
            allowed = _allowed_keys(title, loc, models)
            near = [m[-1] for m in missing if m[:-1] == loc[:-1]]
            guess = _closest(loc[-1], near) or _closest(loc[-1], allowed)
            if guess in near:  # the missing key's error is this one's: said once
                typos.add((*loc[:-1], guess))
            problems.append(_unknown(loc, guess, allowed, guess in near))
    for loc, es in by_loc.items():
        if loc in typos or any(e["type"] == "extra_forbidden" for e in es):
            continue
        problems.append(_other(loc, _most_specific(es)))
    return problems


def _unknown(
    loc: tuple[str, ...], guess: str | None, allowed: list[str], missing: bool
) -> _Problem:
    where = ".".join(loc)
    keys = f"allowed keys: {', '.join(allowed)}" if allowed else ""
    if guess is not None:
        said = [f"{guess} is required"] if missing else []
        notes = f" ({'; '.join([*said, keys] if keys else said)})" if said or keys else ""
        return _Problem(loc, f"{where}: unknown key; did you mean {guess!r}?{notes}", 0)
    return _Problem(loc, f"{where}: unknown key" + (f"; {keys}" if keys else ""), 3)


def _other(loc: tuple[str, ...], e: Any) -> _Problem:
    where = ".".join(loc) or "(top level)"
    if e["type"] == "missing":
        return _Problem(loc, f"{where}: missing required key", 2)
    message = e["msg"].removeprefix("Value error, ")
    rank = 1 if e["type"] == "value_error" else 4
    if not loc and e["type"] == "value_error":
        # a check across keys (a model's own validator): its message names the keys and
        # their values; the whole document it was given would say nothing more
        return _Problem(loc, message, rank)
    return _Problem(loc, f"{where}: {message} (got {quote(e['input'])})", rank)


def _loc(parts: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(_key(p) for p in parts if not _is_union_tag(p))


def _key(part: Any) -> str:
    """A location's part as the line names it: a key that is empty, blank or holds a line
    break or another unprintable character quoted, so the reader sees what the file has."""
    text = str(part)
    return text if text.isprintable() and text.strip() else repr(text)


class _Tag(str):
    """A location's part that names a union member pydantic tried, not a key of the file."""


def _marked(error: Any, names: frozenset[str]) -> Any:
    """The error with its union tags marked. pydantic names union members in the location
    ("IntSpan", "list[...]", "function-after[...]", "float"); a file's own keys can look the
    same ("NUL", "Foo"), so a tag is one of those shapes or a model's name, and the key an
    unknown-key error is about is always a key."""
    parts = error["loc"]
    key_at = len(parts) - 1 if error["type"] == "extra_forbidden" else len(parts)
    marked = tuple(
        _Tag(p) if i != key_at and _looks_like_tag(p, names) else p for i, p in enumerate(parts)
    )
    return {**error, "loc": marked}


def _looks_like_tag(part: Any, names: frozenset[str]) -> bool:
    if not isinstance(part, str):
        return False
    return part in names or part in _BUILTIN_TAGS or ("[" in part and part.endswith("]"))


_BUILTIN_TAGS = frozenset({"float", "int", "bool", "str", "none"})


@functools.cache
def _model_names(roots: tuple[Any, ...]) -> frozenset[str]:
    """The names of the models reachable from the spec models' fields (pydantic's tags)."""
    seen: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        annotation = todo.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ in seen:
                continue
            seen[annotation.__name__] = annotation
            todo += [f.annotation for f in annotation.model_fields.values()]
        todo += typing.get_args(annotation)
    return frozenset(seen)


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, _Tag)


def _most_specific(errors: list[Any]) -> Any:
    """Of one key's errors (one per union member tried), the one our own validators raised,
    else one saying the key is missing, else the first."""
    for kind in ("value_error", "missing"):
        for e in errors:
            if e["type"] == kind:
                return e
    return errors[0]


def _closest(key: str, candidates: list[str]) -> str | None:
    found = difflib.get_close_matches(key, candidates, n=1, cutoff=0.75)
    return found[0] if found else None


def _model_of(annotation: Any) -> Any:
    """The model a field holds: itself, or the one model of an optional (``X | None``)."""
    candidates = typing.get_args(annotation) or (annotation,)
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models[0] if len(models) == 1 else None


def _allowed_keys(title: str, loc: tuple[str, ...], models: dict[str, Any]) -> list[str]:
    model: Any = models.get(title)
    for part in loc[:-1]:
        if model is None or not hasattr(model, "model_fields") or part not in model.model_fields:
            return []
        model = _model_of(model.model_fields[part].annotation)
    if model is None:
        return []
    return [k for k in model.model_fields if k not in ("space", "source")]
