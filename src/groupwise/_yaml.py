"""YAML reading shared by every file groupwise loads.

PyYAML follows YAML 1.1, where ``1e-3`` is a string rather than a float; users write learning
rates that way all the time, so floats are resolved with the YAML 1.2 rule.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class Loader(yaml.SafeLoader):
    """SafeLoader whose floats follow YAML 1.2 (``1e-3`` is 0.001)."""


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


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=Dumper, sort_keys=False)


YAMLError = yaml.YAMLError
