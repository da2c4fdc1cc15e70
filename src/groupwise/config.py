"""TrialConfig: the record every stage shares, and the export format.

    scheme: module_type            # or {name: depth, blocks: 3}
    groups:
      embedding: {optimizer: adamw, lr: 0.001, weight_decay: 0.01}
      recurrent: {optimizer: sgd, lr: 0.1, momentum: 0.9}
    schedule: {warmup: 0.05, decay: cosine, final_lr_fraction: 0.1}   # optional
    grad_clip_norm: 1.0                                                # optional

Each group's ``lr`` is its peak; ``schedule`` (:mod:`groupwise.schedules`) is the shape every
group's lr follows from it over a run, and ``grad_clip_norm`` the norm the gradients of all
parameters are clipped to before each step; without them, the lrs are constant and nothing
is clipped. ``groupwise.build(model, config, total_steps=N)`` gives both the optimizer and
the scheduler.

It is plain data built from the standard library only, so it crosses process boundaries as a
dict and imports nothing heavy. Structure is checked here; whether a scheme, optimizer or
hyperparameter name exists is checked against the registries when an optimizer is built.
Sequences are held as tuples (so a config read from JSON equals the one that was written)
and written as lists.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groupwise.errors import ConfigError, quote
from groupwise.schedules import Schedule

__all__ = ["GroupConfig", "Schedule", "SchemeChoice", "TrialConfig"]

_JSON_SUFFIXES = (".json",)
_YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SchemeChoice:
    """A partition scheme by registry name, with its options (e.g. ``blocks`` for depth)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> str | dict[str, Any]:
        if not self.options:
            return self.name
        return {"name": self.name, **_to_plain(dict(self.options))}

    def __str__(self) -> str:
        """How tables, exports and plots name it, short: ``module_type``, ``depth(3)``,
        ``by_name(3 patterns)``, ``role(head=lm_head)``. The config holds the full spec;
        :attr:`key` tells two schemes apart."""
        options = dict(self.options)
        if not options:
            return self.name
        if set(options) == {"patterns"} and isinstance(options["patterns"], Mapping):
            return f"{self.name}({len(options['patterns'])} patterns)"
        if len(options) == 1:
            return f"{self.name}({_short(next(iter(options.values())))})"
        return f"{self.name}({', '.join(f'{k}={_short(v)}' for k, v in sorted(options.items()))})"

    @functools.cached_property  # frozen: computed once (a study's reads ask it per trial)
    def key(self) -> str:
        """Equal for equal schemes, distinct otherwise (JSON of the full spec)."""
        return json.dumps(_to_plain(self.to_data()), sort_keys=True)

    @classmethod
    def from_data(cls, data: Any, where: str = "scheme") -> SchemeChoice:
        if isinstance(data, SchemeChoice):
            return data
        if isinstance(data, str) and data:
            return cls(data)
        if isinstance(data, Mapping):
            if not isinstance(data.get("name"), str) or not data["name"]:
                raise ConfigError(
                    f"{where}: a scheme mapping needs a 'name' string, e.g. "
                    f"{{name: depth, blocks: 3}}; got {quote(dict(data))}"
                )
            options = {str(k): _to_frozen(v) for k, v in data.items() if k != "name"}
            return cls(data["name"], options)
        raise ConfigError(
            f"{where}: must be a scheme name or a mapping with 'name' "
            f"(e.g. module_type or {{name: depth, blocks: 3}}); got {quote(data)}"
        )


@dataclass(frozen=True)
class GroupConfig:
    """One label's optimizer and the hyperparameters given to it (torch's own names)."""

    optimizer: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, **_to_plain(dict(self.hyperparameters))}

    @classmethod
    def from_data(cls, data: Any, where: str) -> GroupConfig:
        if isinstance(data, GroupConfig):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where}: a group must be a mapping like {{optimizer: adamw, lr: 0.001}}; "
                f"got {quote(data)}"
            )
        optimizer = data.get("optimizer")
        if not isinstance(optimizer, str) or not optimizer:
            raise ConfigError(
                f"{where}.optimizer: each group needs an optimizer name, e.g. "
                f"{{optimizer: adamw, lr: 0.001}}; got {quote(optimizer)}"
            )
        hyper = {str(k): _to_frozen(v) for k, v in data.items() if k != "optimizer"}
        return cls(optimizer, hyper)


@dataclass(frozen=True)
class TrialConfig:
    """How to split a model into groups and how to optimize each group."""

    scheme: SchemeChoice
    groups: Mapping[str, GroupConfig]
    schedule: Schedule | None = None  # None: every lr constant at its peak
    grad_clip_norm: float | None = None  # None: no clipping

    def __post_init__(self) -> None:
        clip = self.grad_clip_norm
        if clip is not None and (
            isinstance(clip, bool) or not isinstance(clip, int | float) or not clip > 0
        ):
            raise ConfigError(f"config.grad_clip_norm: must be a number > 0; got {quote(clip)}")

    def __hash__(self) -> int:
        return hash(self.to_json(sort_keys=True))

    # -- dict -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "scheme": self.scheme.to_data(),
            "groups": {label: group.to_data() for label, group in self.groups.items()},
        }
        if self.schedule is not None:
            data["schedule"] = self.schedule.to_data()
        if self.grad_clip_norm is not None:
            data["grad_clip_norm"] = self.grad_clip_norm
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> TrialConfig:
        """Build from the export format; ``source`` prefixes error messages (e.g. a path)."""
        if isinstance(data, TrialConfig):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{source}: must be a mapping with keys 'scheme' and 'groups'; "
                f"got {type(data).__name__}"
            )
        if "config" in data and "scheme" not in data:  # `groupwise best` output: its config
            return cls.from_dict(data["config"], f"{source}.config")
        unknown = sorted(set(map(str, data)) - {"scheme", "groups", "schedule", "grad_clip_norm"})
        if unknown:
            raise ConfigError(
                f"{source}: unknown key {unknown[0]!r}; a config has 'scheme' and 'groups', "
                "and optionally 'schedule' and 'grad_clip_norm' (or is a `groupwise best` "
                "record, whose 'config' holds them)"
            )
        for key in ("scheme", "groups"):
            if key not in data:
                raise ConfigError(
                    f"{source}: missing key {key!r}; a config needs 'scheme' and 'groups'"
                )
        groups = data["groups"]
        if not isinstance(groups, Mapping) or not groups:
            raise ConfigError(
                f"{source}.groups: must be a non-empty mapping of label -> group; "
                f"got {quote(groups)}"
            )
        schedule = data.get("schedule")
        clip = data.get("grad_clip_norm")
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float)):
            raise ConfigError(f"{source}.grad_clip_norm: must be a number > 0; got {quote(clip)}")
        if clip is not None and not clip > 0:
            raise ConfigError(f"{source}.grad_clip_norm: must be a number > 0; got {clip!r}")
        return cls(
            scheme=SchemeChoice.from_data(data["scheme"], f"{source}.scheme"),
            groups={
                str(label): GroupConfig.from_data(group, f"{source}.groups.{label}")
                for label, group in groups.items()
            },
            schedule=None
            if schedule is None
            else Schedule.from_data(schedule, f"{source}.schedule"),
            grad_clip_norm=None if clip is None else float(clip),
        )

    # -- JSON / YAML ------------------------------------------------------------------------
    def to_json(self, *, indent: int | None = None, sort_keys: bool = False) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=sort_keys)

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> TrialConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{source}: not valid JSON: {e}") from e
        return cls.from_dict(data, source)

    def to_yaml(self) -> str:
        from groupwise import _yaml

        return _yaml.dump(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str, source: str = "config") -> TrialConfig:
        from groupwise import _yaml

        try:
            data = _yaml.load(text)
        except _yaml.YAMLError as e:
            raise ConfigError(f"{source}: not valid YAML: {e}") from e
        return cls.from_dict(data, source)

    # -- files ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrialConfig:
        """Read an exported config; ``.json`` is JSON, ``.yaml``/``.yml`` is YAML."""
        p = Path(path)
        if p.suffix.lower() not in _JSON_SUFFIXES + _YAML_SUFFIXES:
            raise ConfigError(
                f"{p}: unknown config file type {p.suffix!r}; use .yaml, .yml or .json"
            )
        try:
            if p.stat().st_size > 2**20:
                raise ConfigError(f"{p}: a config file may be at most 1 MiB")
            text = p.read_bytes().decode("utf-8")
        except FileNotFoundError as e:
            raise ConfigError(f"{p}: config file not found") from e
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not UTF-8 text; save it as UTF-8") from None
        except OSError as e:
            raise ConfigError(f"{p}: cannot read config file: {e.strerror}") from e
        if p.suffix.lower() in _JSON_SUFFIXES:
            return cls.from_json(text, str(p))
        return cls.from_yaml(text, str(p))

    def save(self, path: str | os.PathLike[str], comment: str | None = None) -> Path:
        """Write as JSON or YAML by the file's suffix; returns the path. ``comment``: a line
        a YAML file starts with (as ``# ...``; JSON has no comments)."""
        p = Path(path)
        if p.suffix.lower() in _JSON_SUFFIXES:
            text = self.to_json(indent=2) + "\n"
        elif p.suffix.lower() in _YAML_SUFFIXES:
            text = "".join(f"# {line}\n" for line in (comment or "").splitlines()) + self.to_yaml()
        else:
            raise ConfigError(
                f"{p}: unknown config file type {p.suffix!r}; use .yaml, .yml or .json"
            )
        try:
            p.write_text(text, encoding="utf-8")
        except OSError as e:
            raise ConfigError(
                f"{p}: cannot write the config: {e.strerror}; check the folder exists and "
                "is writable"
            ) from e
        return p


def _short(value: Any, limit: int = 24) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_frozen(value: Any) -> Any:
    """Lists become tuples (torch takes either; tuples keep round-trips equal)."""
    if isinstance(value, list | tuple):
        return tuple(_to_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _to_frozen(v) for k, v in value.items()}
    return value


def _to_plain(value: Any) -> Any:
    """Tuples become lists, so JSON and YAML write plain sequences."""
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value
