"""The service against a real uvicorn server on loopback: `groupwise serve` in a process of its
own, studies submitted over HTTP and run as real launches (Ray and all), on SQLite and
PostgreSQL. No timing asserts: every wait is for a state, with generous limits."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import yaml
from optuna.trial import TrialState

import groupwise
import polling
from groupwise.config import TrialConfig
from groupwise.execution import unreachable
from groupwise.tasks import resolve_task
from paths import free_port, subprocess_env

ROOT = Path(__file__).resolve().parent.parent
FULL, READ = "full-token-0123456789abcdef", "read-token-0123456789abcdef"
SLOW = "{name: 'user_tasks:faulty', options: {fault: none, delay_s: 0.05}}"


class Server:
    """`groupwise serve` on a free loopback port; start() again after kill() restarts it on
    the same port and database."""

    def __init__(
        self, storage: str, cwd: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.storage, self.cwd, self.extra, self.more_env = storage, cwd, extra, env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        command = [sys.executable, "-m", "groupwise", "serve", "--storage", self.storage]
        command += ["--port", str(self.port), "--spaces", str(ROOT / "search_spaces")]
        env = subprocess_env(
            GROUPWISE_API_TOKENS=FULL, GROUPWISE_API_READ_TOKENS=READ, **self.more_env
        )
        self.proc = subprocess.Popen(
            [*command, *self.extra],
            cwd=self.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code in (200, 503):
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("the server never answered /health")

    def kill(self, sent: int = signal.SIGKILL) -> str:
        assert self.proc is not None
        self.proc.send_signal(sent)
        _, err = self.proc.communicate(timeout=120)
        return err

    def client(self, token: str | None = FULL) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(storage: str, *extra: str) -> Server:
        server = Server(storage, tmp_path, *extra).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        if server.proc is not None and server.proc.poll() is None:
            server.kill(signal.SIGINT)


def study(name: str, trials: int = 4, task: str = "digits_mlp", **more: Any) -> str:
    document = {
        "name": name,
        "task": yaml.safe_load(task) if task.startswith("{") else task,
        "search_space": "seeds_mixed.yaml",
        "budget": {"trials": trials},
        "training": {"epochs": 2, "steps_per_epoch": 5, "batch_size": 32},
        "sampler": {"name": "random"},
        "pruner": "none",
        "workers": {"count": 1},
        "faults": {"heartbeat_s": 1, "stale_after_s": 5},
        "seed": 0,
        **more,
    }
    return yaml.safe_dump(document)


def launched_from_cli(
    work: Path, storage: str, name: str, trials: int, task: str = "digits_mlp"
) -> None:
    """The study ``name`` launched to its end by `groupwise launch` in ``work``, as a user
    does without the service."""
    shutil.copy(ROOT / "search_spaces" / "seeds_mixed.yaml", work / "seeds_mixed.yaml")
    (work / f"{name}.yaml").write_text(study(name, trials=trials, task=task))
    subprocess.run(
        [sys.executable, "-m", "groupwise", "launch", f"{name}.yaml", "--storage", storage],
        cwd=work,
        env=subprocess_env(),
        capture_output=True,
        check=True,
        timeout=600,
    )


def post(client: httpx.Client, text: str) -> httpx.Response:
    return client.post("/studies", content=text, headers={"Content-Type": "application/yaml"})


def wait_state(client: httpx.Client, name: str, *states: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get(f"/studies/{name}").json()
        if body.get("state") in states:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{name} never reached {states}: {body}")


def wait_trials(storage: str, name: str, ready: Callable[[list], bool]) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        trials = polling.trials_of(storage, name)
        if ready(trials):
            return
        time.sleep(0.3)
    raise AssertionError(f"{name}: never got there")


def count(trials: list, state: TrialState) -> int:
    return sum(t.state == state for t in trials)


def test_a_submitted_study_runs_to_its_budget_and_reads_as_the_cli_does(serve, storage_url):
    server = serve(storage_url)
    with server.client() as client:
        answer = post(client, study("api"))
        assert answer.status_code == 201, answer.text
        assert answer.json() == {"name": "api", "url": "/studies/api", "state": "queued"}
        done = wait_state(client, "api", "finished", "failed")
        assert done["state"] == "finished", done
        assert done["counts"]["finished"] == 4 and done["counts"]["running"] == 0
        best = client.get("/studies/api/best", params={"top": 2}).json()
        cli = subprocess.run(
            [sys.executable, "-m", "groupwise", "best", "api", "--top", "2", "--format", "json"],
            capture_output=True,
            text=True,
            env=subprocess_env(GROUPWISE_STORAGE=storage_url),
            check=True,
        )
        assert best == json.loads(cli.stdout)
        assert done["best_trial"] == best["trial"] and done["best_value"] == best["value"]
        config = client.get("/studies/api/config")
        assert config.headers["content-type"].startswith("application/yaml")
        assert TrialConfig.from_dict(yaml.safe_load(config.text)) == TrialConfig.from_dict(
            best["config"]
        )
        # tune small, transfer big: the best config carried to a 4x wider digits_mlp, as
        # groupwise.transfer carries it here; the CLI's --server asks the same
        wider = {"to_task": "digits_mlp", "option": ["hidden=256"], "rule": "sp-per-layer"}
        carried = client.get("/studies/api/config", params=wider)
        assert carried.status_code == 200, carried.text
        assert carried.text.startswith(f"# trial {best['trial']} of 'api' carried to digits_mlp")
        proxy, target = (resolve_task("digits_mlp", {"hidden": h}).make_model() for h in (64, 256))
        expected = groupwise.transfer(TrialConfig.from_dict(best["config"]), proxy, target)
        assert TrialConfig.from_dict(yaml.safe_load(carried.text)) == expected
        exported = subprocess.run(
            [
                sys.executable,
                "-m",
                "groupwise",
                "export",
                "api",
                "-o",
                "wide.yaml",
                "--to-task",
                "digits_mlp",
                "--option",
                "hidden=256",
                "--server",
                server.url,
            ],
            capture_output=True,
            text=True,
            cwd=server.cwd,
            env=subprocess_env(GROUPWISE_API_TOKEN=FULL),
        )
        assert exported.returncode == 0, exported.stderr
        assert TrialConfig.load(server.cwd / "wide.yaml") == expected
        for params, said in [
            ({"to_task": "os:system"}, "the service imports no code a request names"),
            ({"to_task": "digits_mlp", "option": ["hidden"]}, "option: 'hidden': write KEY=VALUE"),
            ({"to_task": "digits_mlp", "option": ["hidden=256"], "rule": "mu"}, "rule 'mu'"),
            ({"option": ["hidden=256"]}, "give to_task"),
        ]:
            refused = client.get("/studies/api/config", params=params)
            assert refused.status_code == 422 and said in refused.json()["error"], refused.text
        page = client.get("/studies/api/trials", params={"limit": 3}).json()
        assert page["total"] == 4 and [t["number"] for t in page["trials"]] == [0, 1, 2]
        rest = client.get("/studies/api/trials", params={"offset": 3}).json()
        assert [t["number"] for t in rest["trials"]] == [3]
        compared = client.get("/studies/api/compare", params={"by": "scheme"}).json()
        assert sum(r["complete"] for r in compared["rows"]) == done["counts"]["complete"]
        assert [s["name"] for s in client.get("/studies").json()] == ["api"]


def test_config_to_task_imports_a_module_task_only_from_an_allow_listed_module(serve, tmp_path):
    """/config?to_task builds the study's model to carry its config: a module task a CLI
    launch recorded is imported only where the operator allow-listed its module."""
    storage = f"sqlite:///{tmp_path}/s.db"
    launched_from_cli(
        tmp_path, storage, "own", 2, "{name: 'user_tasks:tiny', options: {hidden: 16}}"
    )
    wider = {"to_task": "user_tasks:tiny", "option": ["hidden=64"]}
    with serve(storage, "--no-jobs").client() as client:
        refused = client.get("/studies/own/config", params=wider)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert "'user_tasks:tiny' is not allowed" in error and "--allow-task-module" in error
    with serve(storage, "--no-jobs", "--allow-task-module", "user_tasks").client() as client:
        carried = client.get("/studies/own/config", params=wider)
        assert carried.status_code == 200, carried.text
        best = client.get("/studies/own/best").json()
    proxy, target = (resolve_task("user_tasks:tiny", {"hidden": h}).make_model() for h in (16, 64))
    expected = groupwise.transfer(TrialConfig.from_dict(best["config"]), proxy, target)
    assert TrialConfig.from_dict(yaml.safe_load(carried.text)) == expected


def test_tokens_full_read_and_none(serve, tmp_path):
    server = serve(f"sqlite:///{tmp_path}/s.db")
    assert httpx.get(f"{server.url}/health").status_code == 200  # no token needed
    with server.client(None) as anonymous, server.client("x" * 30) as wrong:
        for client in (anonymous, wrong):
            refused = client.get("/studies")
            assert refused.status_code == 401 and "Bearer" in refused.json()["error"]
            assert refused.headers["www-authenticate"] == "Bearer"
    with server.client(READ) as reader:
        assert reader.get("/studies").status_code == 200
        refused = post(reader, study("r"))
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]
        assert reader.post("/studies/r/stop").status_code == 403
        assert reader.get("/studies/r").status_code == 404  # nothing was submitted
    err = server.kill(signal.SIGINT)
    assert FULL not in err and READ not in err


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (study("bad", trials=0), 422, "budget.trials"),
        (study("bad", task="os:system"), 422, "'os:system' is not allowed"),
        (study("bad", task="{name: 'user_tasks:faulty'}"), 422, "--allow-task-module"),
        (study("bad", task="{name: './user_tasks.py:tiny'}"), 422, "names a file"),
        (study("bad").replace("seeds_mixed.yaml", "../studies/x.yaml"), 422, "no folders"),
        (study("bad").replace("seeds_mixed.yaml", "nope.yaml"), 422, "no space named"),
        ("name: [unclosed", 422, "not valid YAML"),
        ("- a list", 422, "must be a mapping"),
    ],
    ids=["budget", "os-system", "unlisted-module", "file", "path", "unknown-space", "yaml", "list"],
)
def test_a_bad_study_is_one_line_and_writes_nothing(serve, tmp_path, body, status, fragment):
    storage = f"sqlite:///{tmp_path}/s.db"
    server = serve(storage)
    with server.client() as client:
        answer = post(client, body)
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert fragment in error and "\n" not in error, error
        assert client.get("/studies").json() == []


def test_bodies_the_server_will_not_read(serve, tmp_path):
    server = serve(f"sqlite:///{tmp_path}/s.db")
    with server.client() as client:
        big = "# " + "x" * (2**20) + "\n" + study("big")
        assert post(client, big).status_code == 413
        chunks = (part.encode() for part in [big[i : i + 65536] for i in range(0, len(big), 65536)])
        chunked = client.post(
            "/studies", content=chunks, headers={"Content-Type": "application/yaml"}
        )
        assert chunked.status_code == 413, chunked.text
        odd = client.post("/studies", content=b"x", headers={"Content-Type": "image/png"})
        assert odd.status_code == 415 and "application/json" in odd.json()["error"]
        as_json = client.post(
            "/studies", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert as_json.status_code == 422 and "not valid JSON" in as_json.json()["error"]
        assert client.get("/studies/api/trials", params={"limit": 0}).status_code == 422
        assert client.get("/studies/none").status_code == 404
        assert client.get("/studies").json() == []


def test_a_changed_study_under_an_existing_name_is_409(serve, tmp_path):
    server = serve(f"sqlite:///{tmp_path}/s.db")
    with server.client() as client:
        assert post(client, study("same", trials=1)).status_code == 201
        wait_state(client, "same", "finished")
        changed = post(client, study("same", trials=1, seed=1))
        assert changed.status_code == 409 and "seed" in changed.json()["error"], changed.text
        again = post(client, study("same", trials=2))  # the same study, a larger budget
        assert again.status_code == 200 and again.json()["state"] == "queued"
        assert wait_state(client, "same", "finished")["counts"]["finished"] == 2


def test_two_studies_at_once_and_a_stop(serve, tmp_path):
    """Both jobs run on the one Ray head the server started (not a private Ray each), and
    the head stops with the server."""
    storage = f"sqlite:///{tmp_path}/s.db"
    server = serve(storage, "--allow-task-module", "user_tasks")
    with server.client() as client:
        assert client.get("/health").json()["ray_address"] is None  # no job yet, no Ray
        assert post(client, study("slow", trials=200, task=SLOW)).status_code == 201
        assert post(client, study("quick", trials=3)).status_code == 201
        wait_trials(storage, "slow", lambda ts: count(ts, TrialState.COMPLETE) >= 1)
        health = client.get("/health").json()
        assert health["ray"] == "ok" and health["ray_address"].startswith("127.0.0.1:"), health
        stopping = client.post("/studies/slow/stop")
        assert stopping.status_code == 200 and stopping.json()["state"] == "stopping"
        assert wait_state(client, "slow", "stopped")["counts"]["running"] == 0
        assert wait_state(client, "quick", "finished")["counts"]["finished"] == 3
    trials = optuna.load_study(study_name="slow", storage=storage).get_trials()
    assert count(trials, TrialState.RUNNING) == 0 and count(trials, TrialState.FAIL) == 0
    assert len(trials) < 200
    quick = optuna.load_study(study_name="quick", storage=storage).get_trials()
    nodes = {
        t.user_attrs["groupwise.run"]["node"]
        for t in trials + quick
        if t.user_attrs.get("groupwise.run")
    }
    assert len(nodes) == 1, nodes  # one cluster: a private Ray per job would be a node each

    server.kill(signal.SIGINT)  # returns once the server exited, which stopped its head first
    assert unreachable(health["ray_address"]), "the server's Ray head outlived it"


def test_a_server_killed_mid_study_resumes_it_with_nothing_lost_or_counted_twice(
    serve, storage_url
):
    server = serve(storage_url, "--allow-task-module", "user_tasks")
    with server.client() as client:
        assert post(client, study("resumed", trials=8, task=SLOW)).status_code == 201
    wait_trials(
        storage_url,
        "resumed",
        lambda ts: count(ts, TrialState.COMPLETE) >= 2 and count(ts, TrialState.RUNNING) >= 1,
    )
    with server.client() as client:
        before = client.get("/studies/resumed").json()
    server.kill(signal.SIGKILL)  # no clean-up of its own: its job's launch is told by the kernel
    server.start()
    with server.client() as client:
        after = client.get("/studies/resumed").json()
        done = wait_state(client, "resumed", "finished", "failed")
    assert done["state"] == "finished", done
    # The job's clock goes on from where it was: its first start is kept, and the time its
    # launches ran still counts (a restart is not a new start).
    assert after["started_at"] == before["started_at"] == done["started_at"]
    assert after["submitted_at"] == before["submitted_at"]
    assert after["elapsed_s"] >= before["elapsed_s"] and done["elapsed_s"] >= after["elapsed_s"]
    trials = optuna.load_study(study_name="resumed", storage=storage_url).get_trials()
    assert count(trials, TrialState.RUNNING) == 0
    assert done["counts"]["finished"] == 8  # the budget, exactly: no trial counted twice
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({t.number for t in complete}) == len(complete)
    err = server.kill(signal.SIGINT)  # the restarted server's log says it took the job over
    assert "job resumed resumed (its server stopped while it ran)" in err, err
    assert "job resumed finished" in err


def test_the_server_logs_each_jobs_life_and_its_own(serve, tmp_path):
    """One line as a job is submitted, starts, ends or fails, and as the server starts and
    stops; no token, no password, and not Optuna's 'new study created in memory' (the
    server's mirror of a study, not a study created)."""
    server = serve(f"sqlite:///{tmp_path}/s.db", "--allow-task-module", "user_tasks")
    with server.client() as client:
        assert post(client, study("fine", trials=2)).status_code == 201
        broken = study("broken", trials=6, task="user_tasks:fails_in_workers")
        assert post(client, broken).status_code == 201
        assert wait_state(client, "fine", "finished", "failed")["state"] == "finished"
        assert wait_state(client, "broken", "finished", "failed")["state"] == "failed"
        client.get("/studies/fine/best")  # a read mirrors the study in memory
    err = server.kill(signal.SIGINT)
    lines = err.splitlines()
    for fragment in (
        "running the jobs of sqlite:///",
        "study fine submitted",
        "job fine started",
        "job fine finished",
        "study broken submitted",
        "job broken started",
        "job broken failed: the first 5 trials",
        "groupwise service: stopped",
    ):
        assert sum(fragment in line for line in lines) == 1, (fragment, err)
    assert "created in memory" not in err and FULL not in err and READ not in err


def test_serve_refuses_to_start_without_tokens(tmp_path):
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("GROUPWISE_API")}
    base = [sys.executable, "-m", "groupwise", "serve", "--storage", f"sqlite:///{tmp_path}/s.db"]
    for extra, fragment in [
        ([], "no API token configured"),
        (["--no-auth", "--host", "0.0.0.0"], "--no-auth is refused"),
        (["--no-auth", "--host", "no.such.host.invalid"], "does not resolve"),
    ]:
        done = subprocess.run([*base, *extra], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], done.stderr
    secret = "short-secret"
    short = subprocess.run(
        base,
        capture_output=True,
        text=True,
        env={**env, "GROUPWISE_API_TOKENS": secret},
        timeout=120,
    )
    assert short.returncode == 2 and "at least 16" in short.stderr
    assert secret not in short.stderr  # a token is never echoed, not even a bad one


def test_the_app_never_imports_ray(tmp_path):
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from groupwise.service import ServiceSettings, create_app\n"
        f"create_app(ServiceSettings('sqlite:///{tmp_path}/s.db', Path('.'), no_auth=True))\n"
        "print('ray' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_cli_talks_to_the_service(serve, tmp_path):
    server = serve(f"sqlite:///{tmp_path}/served.db")
    shutil.copy(ROOT / "search_spaces" / "seeds_mixed.yaml", tmp_path / "seeds_mixed.yaml")
    # 2 trials searched, the leader confirmed on 1 fresh seed
    (tmp_path / "remote.yaml").write_text(
        study("remote", trials=3) + "confirm: {top: 1, seeds: 1}\n"
    )

    def cli(*args: str, token: str | None = FULL) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in subprocess_env().items() if not k.startswith("GROUPWISE_")}
        env |= {"GROUPWISE_API_TOKEN": token} if token else {}
        return subprocess.run(
            [sys.executable, "-m", "groupwise", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    refused = cli("launch", "remote.yaml", "--server", server.url, token=None)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "GROUPWISE_API_TOKEN" in refused.stderr
    launched = cli("launch", "remote.yaml", "--server", server.url)
    assert launched.returncode == 0, launched.stderr
    assert "finished: 3 finished" in launched.stdout and "scheme:" in launched.stdout
    status = cli("status", "remote", "--server", server.url)
    assert status.returncode == 0 and "remote" in status.stdout, status.stderr
    best = cli("best", "remote", "--format", "json", "--server", server.url)
    with server.client() as client:
        assert json.loads(best.stdout) == client.get("/studies/remote/best").json()
    exported = cli("export", "remote", "-o", "best.yaml", "--server", server.url)
    assert exported.returncode == 0, exported.stderr
    config = TrialConfig.load(tmp_path / "best.yaml")
    assert config == TrialConfig.from_dict(json.loads(best.stdout)["config"])
    assert json.loads(best.stdout)["confirmed"]["seeds"] == 1  # the mean of its fresh seed
    assert "over 1 fresh seeds" in (tmp_path / "best.yaml").read_text().splitlines()[0]
    gone = cli("status", "--server", f"http://127.0.0.1:{free_port()}")
    assert gone.returncode == 2 and "cannot reach the groupwise service" in gone.stderr
    assert gone.stderr.count("\n") == 1

    # Every read command takes --server, and answers as it does from the database.
    wider = study("wider", trials=3, task="{name: digits_mlp, options: {hidden: 32}}")
    (tmp_path / "wider.yaml").write_text(wider)
    assert cli("launch", "wider.yaml", "--server", server.url).returncode == 0
    local = f"sqlite:///{tmp_path}/served.db"
    for command in (
        ["studies"],
        ["best", "remote", "--top", "2"],
        ["compare", "remote"],
        ["compare", "remote", "--by", "group", "--top", "2"],
        ["compare", "remote", "wider"],
    ):
        there = cli(*command, "--server", server.url)
        here = cli(*command, "--storage", local)
        assert there.returncode == here.returncode == 0, (command, there.stderr)
        assert there.stdout == here.stdout and there.stderr == here.stderr, command
    # studies of one task with other options: said, as a warning, both ways
    assert "ran its task with other settings" in there.stderr and "hidden" in there.stderr
    reported = cli("report", "remote", "-o", "report", "--server", server.url)
    assert reported.returncode == 0, reported.stderr
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert (tmp_path / "report" / "index.html").exists() and "history.png" in pngs
    assert cli("report", "remote", "-o", "here", "--storage", local).returncode == 0
    assert pngs == sorted(p.name for p in (tmp_path / "here").glob("*.png"))


def test_a_follower_whose_server_dies_says_the_study_resumes(serve, tmp_path, storage_url):
    """`launch --server` follows the study; the server dying under it is one line saying the
    study is not lost (its job resumes with the server), exit 2, no traceback."""
    server = serve(storage_url, "--allow-task-module", "user_tasks")
    shutil.copy(ROOT / "search_spaces" / "seeds_mixed.yaml", tmp_path / "seeds_mixed.yaml")
    (tmp_path / "followed.yaml").write_text(study("followed", trials=8, task=SLOW))
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("GROUPWISE_")}
    follower = subprocess.Popen(
        [sys.executable, "-m", "groupwise", "launch", "followed.yaml", "--server", server.url],
        cwd=tmp_path,
        env=env | {"GROUPWISE_API_TOKEN": FULL},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_trials(storage_url, "followed", lambda ts: count(ts, TrialState.COMPLETE) >= 1)
    server.kill(signal.SIGKILL)
    _, err = follower.communicate(timeout=600)
    assert follower.returncode == 2, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "Traceback" not in err and "lost the service while following study 'followed'" in line
    assert "its job resumes when the server is back" in line
    assert f"groupwise status followed --server {server.url}" in line
    server.start()  # and it does
    with server.client() as client:
        assert wait_state(client, "followed", "finished", "failed")["state"] == "finished"


def test_tokens_from_the_environment_and_a_file_of_hashes(tmp_path):
    from groupwise.errors import ConfigError
    from groupwise.service import Tokens, digest

    hashed = "another-token-0123456789"
    made = subprocess.run(
        [sys.executable, "-m", "groupwise", "hash-token", "read"],
        input=hashed + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert made.stdout.strip() == f"read sha256:{digest(hashed)}" and hashed not in made.stdout
    file = tmp_path / "tokens"
    file.write_text(f"# the team's tokens\n{made.stdout}\n")
    tokens = Tokens.load(
        {"GROUPWISE_API_TOKENS": f" {FULL} ,", "GROUPWISE_API_READ_TOKENS": READ}, file
    )
    assert tokens.access(FULL) == "full" and tokens.access(READ) == "read"
    assert tokens.access(hashed) == "read"
    assert tokens.access(FULL + "x") is None and tokens.access("") is None
    assert tokens.access(None) is None
    file.write_text("full md5:abc\n")
    with pytest.raises(ConfigError, match="line 1: expected `full sha256"):
        Tokens.load({}, file)
    assert Tokens.load({}).empty


def test_a_job_moves_through_its_states_in_the_database(storage_url):
    from groupwise.errors import StudyError
    from groupwise.store import Jobs

    jobs = Jobs(storage_url)
    assert jobs.submit("j", {"budget": {"trials": 2}}, "f1").state == "queued"
    with pytest.raises(StudyError, match="another task, search space"):
        jobs.submit("j", {}, "f2")  # another study under the same name
    assert jobs.claim("j", "here:1") and jobs.get("j").state == "running"
    first = jobs.get("j")
    assert jobs.request_stop("j").state == "stopping"
    again = jobs.submit("j", {"budget": {"trials": 4}}, "f1")  # resubmitted: the stop is withdrawn
    assert again.state == "running" and not again.stop_requested
    assert again.document["budget"]["trials"] == 4 and again.resubmitted_at > again.run_started_at
    # resubmitting (a new budget, or to follow it) is not a new study: its clock goes on
    assert (again.submitted_at, again.started_at) == (first.submitted_at, first.started_at)
    jobs.end("j", "finished")
    ended = jobs.get("j")
    assert ended.state == "finished" and not jobs.claim("j", "here:1")
    assert ended.run_started_at is None and ended.elapsed_s() == ended.run_s > 0
    assert jobs.submit("j", {}, "f1").state == "queued"  # a finished study continues
    assert jobs.claim("j", "there:2")
    resumed = jobs.get("j")
    assert resumed.started_at == first.started_at and resumed.elapsed_s() >= ended.run_s
    assert jobs.claim("j", "after-a-crash:3")  # its server died: its launch's time counts
    assert jobs.get("j").run_s > ended.run_s
    jobs.pause("j")  # its server stopped cleanly: the clock stops until the next one
    paused = jobs.get("j")
    assert paused.state == "running" and paused.elapsed_s() == paused.run_s
    jobs.end("j", "stopped", "stopped on request")
    assert jobs.submit("j", {}, "f1").state == "queued"
    assert jobs.request_stop("j").state == "stopped"  # queued: stops at once
