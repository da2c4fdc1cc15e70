"""Doors: inputs that must stay one line and exit 2 however hostile, secrets that never print,
code that runs only where the user put it, and what a launch listens on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paths import subprocess_env

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
GOOD_SPACE = "schemes: [single]\noptimizers: {adamw: {}}\n"


def groupwise(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "groupwise", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=subprocess_env(**(env or {})),
    )


def one_line(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(lines[0]) < 600  # an error quotes a bad value, never all of it
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def study(tmp_path: Path, name: str = "s", task: str = "user_tasks:tiny") -> str:
    return (
        f"name: {name}\ntask: {task}\nsearch_space: space.yaml\nbudget: {{trials: 2}}\n"
        "training: {epochs: 1}\n"
    )


@pytest.fixture
def space(tmp_path: Path) -> Path:
    (tmp_path / "space.yaml").write_text(GOOD_SPACE)
    return tmp_path


def test_a_study_file_that_is_not_utf8(space):
    (space / "s.yaml").write_bytes(study(space).encode() + b"description: caf\xe9\n")
    one_line(groupwise("validate", "s.yaml", cwd=space), "s.yaml: not UTF-8 text (byte 0xe9")


def test_a_builtin_named_as_the_task(space):
    (space / "s.yaml").write_text(study(space, task="'builtins:dict'"))
    one_line(groupwise("validate", "s.yaml", cwd=space), "'dict' is not a task function")


def test_a_yaml_alias_bomb_is_refused_at_once(space):
    """Nine levels of nine aliases: 600 bytes that expand to 387 million values."""
    levels = ['l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        levels.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    (space / "s.yaml").write_text(study(space) + "\n".join(levels) + "\n")
    assert (space / "s.yaml").stat().st_size < 1000
    one_line(groupwise("validate", "s.yaml", cwd=space), "more than 100,000 values")


def test_a_huge_file_is_refused_before_it_is_read(space):
    (space / "s.yaml").write_text(study(space) + "description: " + "x" * (2 * 2**20) + "\n")
    one_line(groupwise("validate", "s.yaml", cwd=space), "a study or search-space file may be")


def test_a_study_name_longer_than_storage_keeps(space):
    (space / "s.yaml").write_text(study(space, name="n" * 600))
    one_line(groupwise("validate", "s.yaml", cwd=space), "name: String should have at most 128")


def test_a_key_given_twice(space):
    (space / "s.yaml").write_text(study(space) + "budget: {trials: 3}\n")
    one_line(groupwise("validate", "s.yaml", cwd=space), "key 'budget' is given twice")


@pytest.mark.usefixtures("ray_local")
def test_export_never_overwrites_or_follows_a_link_without_force(space):
    from groupwise.execution import launch
    from groupwise.studyfiles import read_study

    (space / "s.yaml").write_text(study(space))
    db = f"sqlite:///{space}/g.db"
    launch(read_study(space / "s.yaml"), storage=db)
    (space / "best.yaml").write_text("mine\n")
    one_line(groupwise("export", "s", "-o", "best.yaml", "--storage", db, cwd=space), "exists")
    assert (space / "best.yaml").read_text() == "mine\n"
    (space / "link.yaml").symlink_to(space / "nowhere" / "target.yaml")  # dangling
    one_line(groupwise("export", "s", "-o", "link.yaml", "--storage", db, cwd=space), "symbolic")
    done = groupwise("export", "s", "-o", "best.yaml", "--force", "--storage", db, cwd=space)
    assert done.returncode == 0 and "groups:" in (space / "best.yaml").read_text()


def test_the_current_directory_cannot_shadow_an_installed_package(space):
    """A stray sklearn.py where the user runs groupwise is not imported in place of scikit-learn
    (the digits task needs the real one); tasks kept there still import, after it."""
    marker = space / "shadowed"
    (space / "sklearn.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (space / "mytasks.py").write_text(
        "from user_tasks import tiny\n\ndef task(*, seed=0):\n    return tiny(seed=seed)\n"
    )
    (space / "s.yaml").write_text(study(space, task="'mytasks:task'"))
    (space / "d.yaml").write_text(study(space, name="d", task="digits_mlp"))
    done = groupwise("validate", "s.yaml", "d.yaml", cwd=space)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_database_passwords_never_print(space):
    """PostgreSQL's trust authentication here accepts any password, so a URL can carry one."""
    url = os.environ.get("GROUPWISE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set GROUPWISE_TEST_POSTGRES_URL to run the PostgreSQL tests")
    secret = "hunter2-s3cret"
    wrong_host = "postgresql+psycopg://groupwise:" + secret + "@127.0.0.1:1/nowhere"
    done = groupwise("status", "--storage", wrong_host, cwd=space)
    one_line(done, "groupwise:***@127.0.0.1:1")
    assert secret not in done.stdout + done.stderr
    from sqlalchemy.engine import make_url

    with_password = make_url(url).set(password=secret).render_as_string(hide_password=False)
    done = groupwise("studies", "--storage", with_password, cwd=space)
    assert done.returncode == 0 and secret not in done.stdout + done.stderr


def test_a_dashboard_for_every_interface_says_it_has_no_login(space):
    db = space / "g.db"
    from groupwise.store import open_storage

    open_storage(f"sqlite:///{db}", create=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "groupwise",
            "dashboard",
            "--host",
            "0.0.0.0",
            "--port",
            port,
            "--storage",
            f"sqlite:///{db}",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stderr.readline()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert line.startswith("warning: optuna-dashboard has no login") and "groupwise serve" in line


def test_a_launch_keeps_rays_token_private(tmp_path):
    """While a launch runs (its one trial hangs), the token that guards its Ray instance is
    readable by its owner only, and every socket the launch's processes listen on is one of
    Ray's, so guarded by that token. (Ray binds its servers to all interfaces and turns a
    loopback node address into the machine's own; the README says what to do about it.)"""
    (tmp_path / "space.yaml").write_text(GOOD_SPACE)
    task = "{name: 'user_tasks:faulty', options: {fault: hang, at: 1}}"
    (tmp_path / "s.yaml").write_text(study(tmp_path, task=task).replace("trials: 2", "trials: 1"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "groupwise", "launch", "s.yaml", "--storage", "sqlite:///g.db"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        bound: dict[str, str] = {}
        while time.monotonic() < deadline and not any("RayWorker" in p for p in bound.values()):
            time.sleep(1)
            bound = listening(descendants(proc.pid))
        assert any("RayWorker" in p for p in bound.values()), "the launch did not start"
        ray_processes = ("ray::", "raylet", "gcs_server", "python")  # python: Ray's driver core
        assert all(name.startswith(ray_processes) for name in bound.values()), bound
        token = Path.home() / ".ray" / "auth_token"
        assert token.exists() and token.stat().st_mode & 0o077 == 0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = {root}, [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening(pids: set[int]) -> dict[str, str]:
    """address:port -> process name, for the TCP sockets ``pids`` listen on (ss)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30).stdout
    bound = {}
    for line in out.splitlines():
        if "pid=" not in line:
            continue
        pid = int(line.split("pid=")[1].split(",")[0])
        if pid in pids:
            bound[line.split()[3]] = line.split('(("')[1].split('"')[0]
    return bound
