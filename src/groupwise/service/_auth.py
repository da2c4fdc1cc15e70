"""Bearer tokens: full access (submit, stop, read) and read-only.

Tokens come from ``GROUPWISE_API_TOKENS`` and ``GROUPWISE_API_READ_TOKENS`` (comma-separated)
and from a tokens file of hashed ones (``full sha256:<hex>`` / ``read sha256:<hex>`` per
line), so a deployment need not keep a token in clear anywhere. Only SHA-256 digests are
held; a presented token is hashed and compared with every digest in constant time
(:func:`hmac.compare_digest`, no early exit), and no token is ever logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from groupwise.errors import ConfigError

__all__ = ["MIN_TOKEN_CHARS", "Access", "Tokens", "digest"]

Access = Literal["full", "read"]
MIN_TOKEN_CHARS = 16
FULL_ENV, READ_ENV = "GROUPWISE_API_TOKENS", "GROUPWISE_API_READ_TOKENS"
_LINE = re.compile(r"^(full|read)\s+sha256:([0-9a-f]{64})$")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Tokens:
    """The digests of the tokens a server accepts."""

    digests: tuple[tuple[str, Access], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.digests

    def access(self, token: str | None) -> Access | None:
        """What ``token`` may do; None for no token or an unknown one. Every digest is
        compared, whatever matches, so the time taken says nothing about the tokens."""
        if not token:
            return None
        presented = digest(token).encode()
        found: Access | None = None
        for known, access in self.digests:
            if hmac.compare_digest(presented, known.encode()) and found != "full":
                found = access
        return found

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file: Path | None = None) -> Tokens:
        env = os.environ if env is None else env
        digests: list[tuple[str, Access]] = []
        for name, access in ((FULL_ENV, "full"), (READ_ENV, "read")):
            for i, token in enumerate(t.strip() for t in env.get(name, "").split(",")):
                if not token:
                    continue
                if len(token) < MIN_TOKEN_CHARS:
                    raise ConfigError(
                        f"{name}: token {i + 1} has {len(token)} characters; a token needs at "
                        f"least {MIN_TOKEN_CHARS} (e.g. `python -c 'import secrets; "
                        "print(secrets.token_urlsafe(32))'`)"
                    )
                digests.append((digest(token), access))  # type: ignore[arg-type]
        if file is not None:
            digests.extend(_read_file(file))
        return cls(tuple(digests))


def _read_file(file: Path) -> list[tuple[str, Access]]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--tokens-file {file}: cannot read it ({e})") from None
    found: list[tuple[str, Access]] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(
                f"--tokens-file {file}, line {number}: expected `full sha256:<64 hex digits>` "
                "or `read sha256:<64 hex digits>` (make one with `groupwise hash-token`)"
            )
        found.append((match.group(2), match.group(1)))  # type: ignore[arg-type]
    return found
