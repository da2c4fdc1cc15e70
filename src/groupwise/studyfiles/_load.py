"""Reading study and search-space files; pydantic errors become one line that names the file,
the key path, the bad value and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from groupwise import _yaml
from groupwise.errors import SpecError, quote
from groupwise.studyfiles._errors import describe as describe_errors
from groupwise.studyfiles._space import SearchSpace
from groupwise.studyfiles._study import StudySpec

__all__ = [
    "parse_yaml_text",
    "read_search_space",
    "read_study",
    "read_study_document",
    "study_document",
    "validate_file",
]


# Study and space files are a screen or two of YAML; anything far larger is a mistake (or an
# attack on a service that reads them), refused before it costs memory or minutes.
MAX_BYTES = 2**20
MAX_VALUES = 100_000  # after YAML aliases are expanded


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SpecError(
                f"{path}: {path.stat().st_size:,} bytes; a study or search-space file may be at "
                f"most {MAX_BYTES:,} (1 MiB)"
            )
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "save it as UTF-8"
        ) from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror}") from e
    return parse_yaml_text(text, str(path))


def parse_yaml_text(text: str, where: str) -> dict[str, Any]:
    """A study or space document from YAML (or JSON) text; ``where`` names it in errors."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"{where}: a study or search-space document may be at most 1 MiB")
    try:
        data = _yaml.load(text)
    except _yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(f"{where}: not valid YAML{at}: {problem}") from e
    return check_document(data, where)


def check_document(data: Any, where: str) -> dict[str, Any]:
    """A mapping, and not one that YAML aliases blow up past MAX_VALUES values."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: must be a mapping of keys to values; got {type(data).__name__}")
    if _yaml.size(data, MAX_VALUES) > MAX_VALUES:
        raise SpecError(
            f"{where}: more than {MAX_VALUES:,} values once its YAML aliases (*name) are "
            "expanded; write the values out, or use fewer nested aliases"
        )
    return data


def parse(model: type[BaseModel], data: Any, path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise SpecError(describe(e, path)) from e


def describe(error: ValidationError, path: Path) -> str:
    """``file: key.path: what is wrong (got value)``, the most useful problem first."""
    return describe_errors(error, path, {"StudySpec": StudySpec, "SearchSpace": SearchSpace})


def read_search_space(path: str | Path) -> SearchSpace:
    p = Path(path)
    space: SearchSpace = parse(SearchSpace, read_yaml(p), p)
    return space


def read_study(path: str | Path) -> StudySpec:
    """Read and validate a study file and the search-space file it names."""
    p = Path(path)
    data = read_yaml(p)
    reference = data.get("search_space")
    if not isinstance(reference, str) or not reference:
        raise SpecError(
            f"{p}: search_space: must name a search-space file, relative to the study file "
            f"(e.g. ../search_spaces/broad.yaml); got {reference!r}"
        )
    space_path = (p.parent / reference).resolve()
    if not space_path.is_file():
        raise SpecError(f"{p}: search_space: file not found: {reference} (looked at {space_path})")
    space = read_search_space(space_path)
    spec: StudySpec = parse(
        StudySpec, {**data, "search_space": space_path, "space": space, "source": p}, p
    )
    return spec


# A search space a submitted study names: a file of the server's own folder, never a path.
SPACE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\.ya?ml$")


def read_study_document(data: Any, *, where: str, spaces: Path) -> StudySpec:
    """A study given as data rather than a file (what the service is sent): ``search_space``
    is the space itself (a mapping), or the name of a file in ``spaces``; never a path, so a
    document cannot make the reader open any other file."""
    data = check_document(data, where)
    reference = data.get("search_space")
    if isinstance(reference, dict):
        space = parse(SearchSpace, check_document(reference, f"{where}: search_space"), Path(where))
        space_path = Path("(inline)")
    elif isinstance(reference, str) and SPACE_NAME.match(reference):
        space_path = spaces / reference
        if not space_path.is_file():
            known = sorted(p.name for p in spaces.glob("*.y*ml")) if spaces.is_dir() else []
            raise SpecError(
                f"{where}: search_space: no space named {reference!r}; known: "
                f"{', '.join(known) or '(none)'}; or give the space itself as a mapping"
            )
        space = read_search_space(space_path)
    else:
        raise SpecError(
            f"{where}: search_space: must be a search space (a mapping) or the name of one of "
            f"the server's spaces (e.g. per_group.yaml, no folders); got {quote(reference)}"
        )
    spec: StudySpec = parse(
        StudySpec, {**data, "search_space": space_path, "space": space, "source": None}, Path(where)
    )
    return spec


def study_document(path: str | Path) -> dict[str, Any]:
    """A study file as data, its search space inlined: what `launch --server` sends. The
    file gets every check :func:`read_study` makes first."""
    spec = read_study(path)
    data: dict[str, Any] = read_yaml(Path(path))
    data["search_space"] = read_yaml(spec.search_space)
    return data


def validate_file(path: str | Path) -> StudySpec | SearchSpace:
    """Validate either kind of file, told apart by its keys (a study has ``task``)."""
    p = Path(path)
    data = read_yaml(p)
    if "task" in data or "search_space" in data:
        return read_study(p)
    return read_search_space(p)
