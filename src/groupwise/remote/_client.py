"""HTTP to a ``groupwise serve`` (``--server URL``), standard library only (urllib). The token
comes from ``GROUPWISE_API_TOKEN``; a refusal is the server's own one-line error."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from groupwise.errors import ConfigError, StudyError

__all__ = ["TOKEN_ENV", "Remote", "UnreachableError"]

TOKEN_ENV = "GROUPWISE_API_TOKEN"


class UnreachableError(StudyError):
    """No answer from the service at all (it is down, or the address is wrong)."""


@dataclass(frozen=True)
class Remote:
    server: str
    token: str | None

    @classmethod
    def of(cls, server: str) -> Remote:
        parts = urllib.parse.urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"--server: {server!r} is not an http(s) URL, e.g. http://127.0.0.1:8000"
            )
        return cls(server.rstrip("/"), os.environ.get(TOKEN_ENV) or None)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, bytes, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            f"{self.server}{path}", data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read(), response.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            raise self._refusal(e) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UnreachableError(
                f"cannot reach the groupwise service at {self.server}: {reason}"
            ) from None

    def _refusal(self, error: urllib.error.HTTPError) -> Exception:
        try:
            message = json.loads(error.read())["error"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {error.code} {error.reason}"
        if error.code == 401 and not self.token:
            message += f" (set {TOKEN_ENV})"
        kind = ConfigError if error.code in (413, 415, 422) else StudyError
        return kind(f"{self.server}: {message}")

    def get(self, path: str, **query: Any) -> Any:
        return json.loads(self.text(path, **query))

    def text(self, path: str, **query: Any) -> str:
        kept = {k: v for k, v in query.items() if v is not None}  # None: not asked
        suffix = f"?{urllib.parse.urlencode(kept, doseq=True)}" if kept else ""
        return self.request("GET", path + suffix)[1].decode("utf-8")

    def submit(self, document: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(document).encode()
        _, answer, _ = self.request("POST", "/studies", body, "application/json")
        result: dict[str, Any] = json.loads(answer)
        return result

    def study(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/studies/{urllib.parse.quote(name)}")
        return found
