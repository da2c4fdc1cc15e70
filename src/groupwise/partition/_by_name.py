"""by_name: the user's own labels, each a regular expression searched in parameter names."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import nn

from groupwise.errors import PartitionError
from groupwise.partition._base import ParamInfo, Scheme, assign_by, register_scheme

REST = "rest"


def compile_pattern(where: str, pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise PartitionError(f"{where}: must be a regular expression string; got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise PartitionError(
            f"{where}: invalid regular expression {pattern!r}: {e}; "
            "fix the pattern (escape literal dots and brackets with a backslash)"
        ) from e


@register_scheme
class ByName(Scheme):
    """Ordered label -> regex; a parameter takes the first label whose pattern it matches
    (``re.search`` on its name), else ``rest``."""

    name = "by_name"

    def __init__(self, *, patterns: Mapping[str, str] | None = None) -> None:
        if not isinstance(patterns, Mapping) or not patterns:
            raise PartitionError(
                "scheme 'by_name' needs option 'patterns': an ordered mapping label -> regex, "
                f"e.g. {{embedding: '^emb', head: '^fc'}}; got {patterns!r}"
            )
        if REST in patterns:
            raise PartitionError(
                f"by_name patterns: label {REST!r} is reserved for parameters no pattern matches; "
                "rename that label"
            )
        self.patterns = {
            str(label): compile_pattern(f"by_name pattern {label!r}", pattern)
            for label, pattern in patterns.items()
        }

    def label_order(self) -> tuple[str, ...]:
        return (*self.patterns, REST)

    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]:
        def label(info: ParamInfo) -> str:
            for name, pattern in self.patterns.items():
                if pattern.search(info.name):
                    return name
            return REST

        return assign_by(params, label)

    def notes(
        self, model: nn.Module, params: Sequence[ParamInfo], groups: Mapping[str, Sequence[str]]
    ) -> list[str]:
        return [
            f"pattern {label!r} ({pattern.pattern!r}) matches no trainable parameter of "
            f"{type(model).__name__} that an earlier pattern has not taken; label {label!r} "
            "will be empty"
            for label, pattern in self.patterns.items()
            if not groups.get(label)
        ]
