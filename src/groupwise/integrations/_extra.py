"""The one line an integration says when its framework is not installed."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, package: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"groupwise.integrations.{extra} needs {package}, which is not installed: "
            f"pip install 'groupwise[{extra}]' ({e})"
        ) from None
