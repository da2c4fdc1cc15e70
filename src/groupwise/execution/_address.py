"""Whether a Ray cluster address answers, by a plain TCP connect: Ray itself waits minutes for
an address nobody answers. No Ray import, so the service can ask it too."""

from __future__ import annotations

import socket

__all__ = ["unreachable"]


def unreachable(address: str) -> str | None:
    """None if something listens at ``host:port`` (``ray://`` allowed), else why not."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        return e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return None
