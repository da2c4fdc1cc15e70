"""A PostgreSQL server of one's own (initdb on a free port, in a temporary directory), so a
test or a fault-injection script can stop and restart it without touching the shared one."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType


class PrivatePostgres:
    """``with PrivatePostgres() as pg``: ``pg.url``, ``pg.stop()``, ``pg.start()``,
    ``pg.restart(down_s)``; the server and its data are removed on exit."""

    def __init__(self) -> None:
        found = shutil.which("initdb") or next(
            iter(glob.glob("/usr/lib/postgresql/*/bin/initdb")), None
        )
        if not found:
            raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
        self.bindir = os.path.dirname(found)
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.data = ""
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> PrivatePostgres:
        self.data = tempfile.mkdtemp(prefix="groupwise-pg-", dir="/tmp")
        os.chmod(self.data, 0o700)
        if self.as_postgres:
            shutil.chown(self.data, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", timeout=120)
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.data, ignore_errors=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "-l", f"{self.data}/server.log", "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut, as in a real restart or failover."""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run("pg_ctl", "-D", self.data, *args, check=check)

    def _run(self, tool: str, *args: str, check: bool = True, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_postgres, f"{self.bindir}/{tool}", *args],
            check=check,
            capture_output=True,
            timeout=timeout,
        )
