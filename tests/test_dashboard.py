"""`groupwise dashboard`: the real optuna-dashboard on a finished study, loaded in a real
headless Chromium, on SQLite and on PostgreSQL. The screenshot is kept for people to look at
(GROUPWISE_SCREENSHOTS=DIR keeps a copy there)."""

from __future__ import annotations

import html
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import matplotlib.image
import optuna
import pytest

from groupwise.execution import launch
from groupwise.store import CONFIG_ATTR, CONFIRMS_ATTR
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


@pytest.mark.usefixtures("ray_local")
def test_the_dashboard_shows_the_study_and_a_trials_config(tmp_path, storage_url):
    path = make_study(tmp_path, trials=3, epochs=2, name="dash")
    path.write_text(path.read_text() + "confirm: {top: 1, seeds: 1}\n")  # 2 searched, 1 confirms
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
