"""YAML reading shared by every file groupwise loads.

PyYAML follows YAML 1.1, where ``1e-3`` is a string rather than a float; users write learning
rates that way all the time, so floats are resolved with the YAML 1.2 rule.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

YAMLError: type[Exception] = yaml.YAMLError  # what load raises on text that is not YAML

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class Loader(yaml.SafeLoader):
    """SafeLoader whose floats follow YAML 1.2 (``1e-3`` is 0.001), and that refuses a key
    given twice in one mapping (PyYAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key {str(key)[:80]!r} is given twice (first on line "
                    f"{seen[key].start_mark.line + 1}); give each key once",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class Dumper(yaml.SafeDumper):
    """SafeDumper that quotes every string Loader would read back as something else."""


for _cls in (Loader, Dumper):
    _cls.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # Loader is a SafeLoader


def size(data: Any, limit: int) -> int:
    """How many values ``data`` holds once aliases are expanded, counting up to ``limit``
    (a few aliases of aliases make billions: a 600-byte "YAML bomb")."""
    count, todo = 0, [data]
    while todo and count <= limit:
        item = todo.pop()
        count += 1
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list | tuple):
            todo.extend(item)
    return count


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=Dumper, sort_keys=False)


YAMLError = yaml.YAMLError
