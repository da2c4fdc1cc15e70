"""`groupwise dashboard`: the real optuna-dashboard on a finished study, loaded in a real
headless Chromium, on SQLite and on PostgreSQL. The screenshot is kept for people to look at
(GROUPWISE_SCREENSHOTS=DIR keeps a copy there)."""

from __future__ import annotations

import fcntl
import html
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib.image
import optuna
import pytest

from groupwise.execution import launch
from groupwise.store import CONFIG_ATTR, CONFIRMS_ATTR, TRANSFER_ATTR
from groupwise.studyfiles import read_study
from paths import free_port
from test_cli_search import groupwise_exe, run
from test_execution import make_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)"
)
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def listening_on(port: int) -> set[str]:
    """The local addresses the kernel has a listening TCP socket on for ``port``."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *HEADLESS, "--virtual-time-budget=15000", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


class Browser:
    """A headless Chromium driven through the DevTools protocol over a pipe (it reads fd 3
    and writes fd 4: no websocket client needed), for what a page shows only after a click."""

    def __init__(self) -> None:
        assert CHROMIUM is not None
        to_chrome, self.commands = os.pipe()
        self.answers, from_chrome = os.pipe()
        a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in (to_chrome, from_chrome))
        for fd in (to_chrome, from_chrome):
            os.close(fd)
        move = f"exec 3<&{a} 4>&{b} {a}<&- {b}>&- " + '"$@"'  # bash: dash takes fds < 10
        command = [CHROMIUM, *HEADLESS, "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", move, "bash", *command],
            pass_fds=(a, b),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (a, b):
            os.close(fd)
        self.buffer, self.next_id = b"", 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.answers, 1 << 16)
                assert chunk, "chromium closed its DevTools pipe"
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                assert "error" not in answer, answer
                return answer["result"]  # type: ignore[no-any-return]

    def run(self, expression: str) -> Any:
        """``expression``'s value in the page; an exception it raises fails the test."""
        done = self.call("Runtime.evaluate", self.session, expression=expression)
        assert "exceptionDetails" not in done, done["exceptionDetails"]
        return done["result"].get("value")

    def text_when(self, expression: str, holds: str, timeout: float = 60) -> str:
        """``expression``'s value (a string) once it contains ``holds``, or at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = str(self.run(expression) or "")
            if holds in found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def open(self, url: str) -> None:
        self.call("Page.navigate", self.session, url=url)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self.commands)
        os.close(self.answers)


@pytest.mark.usefixtures("ray_local")
def test_the_dashboard_shows_the_study_and_a_trials_config(tmp_path, storage_url):
    path = make_study(tmp_path, trials=3, epochs=2, name="dash")
    # 2 searched, 1 confirms; the best carried to a 4x wider model (tune small, transfer big)
    path.write_text(
        path.read_text() + "confirm: {top: 1, seeds: 1}\ntransfer: {options: {hidden: 64}}\n"
    )
    launch(read_study(path), storage=storage_url)
    loaded = optuna.load_study(study_name="dash", storage=storage_url)
    best = loaded.best_trial
    (confirmation,) = [t for t in loaded.trials if CONFIRMS_ATTR in t.user_attrs]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "GROUPWISE_STORAGE"}
    server = subprocess.Popen(
        [groupwise_exe(), "dashboard", "--storage", storage_url, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = json.loads(get(f"{base}/api/studies"))["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "the dashboard did not start in 60 s"
                time.sleep(0.5)
        assert listening_on(port) == {"127.0.0.1"}  # loopback unless told otherwise
        (study_id,) = [s["study_id"] for s in studies if s["study_name"] == "dash"]
        page = f"{base}/dashboard/studies/{study_id}/trials?numbers={best.number}"

        dom = chromium("--dump-dom", page)
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert "dash" in dom.stdout and f"Trial {best.number}" in dom.stdout
        config = best.user_attrs[CONFIG_ATTR]  # the trial's groupwise.config, as JSON
        assert "groupwise.config" in dom.stdout and html.escape(config, quote=False) in dom.stdout
        # a confirmation is a trial the dashboard shows, saying what it confirms and its seed
        dom = chromium(
            "--dump-dom",
            f"{base}/dashboard/studies/{study_id}/trials?numbers={confirmation.number}",
        )
        assert "groupwise.confirms" in dom.stdout and "groupwise.train_seed" in dom.stdout
        # the best config carried to the study's transfer target is a study user attribute,
        # which the study's page lists
        carried = loaded.user_attrs[TRANSFER_ATTR]
        assert carried["target"] == {"name": "user_tasks:tiny", "options": {"hidden": 64}}
        # (five rows a page, as optuna-dashboard 0.x shows them: a later page, after the
        # study's own facts, which the test pages through as a user clicks)
        browser = Browser()
        try:
            browser.open(f"{base}/dashboard/studies/{study_id}")
            card = (
                "[...document.querySelectorAll('h6')].find(h => h.textContent == "
                "'Study User Attributes')?.parentElement"
            )
            shown = browser.text_when(f"{card}?.innerText", "groupwise.task")
            assert "groupwise.task" in shown, shown
            for _ in range(5):
                if TRANSFER_ATTR in shown:
                    break
                browser.run(f"{card}.querySelector('[aria-label=\"next page\"]').click()")
                shown = browser.text_when(f"{card}.innerText", TRANSFER_ATTR)
        finally:
            browser.close()
        assert TRANSFER_ATTR in shown and "user_tasks:tiny" in shown, shown

        shot = tmp_path / "dashboard.png"
        done = chromium("--window-size=1400,1000", f"--screenshot={shot}", page)
        assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
        pixels = matplotlib.image.imread(shot)
        assert pixels.shape[:2] == (1000, 1400)
        assert pixels[..., :3].std() > 0.05  # a rendered page, not a blank one
        keep = os.environ.get("GROUPWISE_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / f"dashboard-{storage_url.split(':')[0]}.png")

        # A second dashboard on the same port: one line, exit 2.
        taken = run("dashboard", "--storage", storage_url, "--port", str(port), cwd=tmp_path)
        assert taken.returncode == 2 and "cannot serve" in taken.stderr
        assert taken.stderr.count("\n") == 1
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_dashboard_refuses_a_database_that_is_not_there(tmp_path):
    done = run("dashboard", "--storage", f"sqlite:///{tmp_path}/none.db", cwd=tmp_path)
    assert done.returncode == 2 and "no study database" in done.stderr
    assert not (tmp_path / "none.db").exists()
