"""A real multi-node Ray cluster on loopback: a head and a second node started with
`ray start`, a study launched into it with --ray-address, trials on both nodes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from paths import free_port, subprocess_env

pytestmark = pytest.mark.integration

TESTS = Path(__file__).parent


def ray_env() -> dict[str, str]:
    # `ray start` clusters use token authentication; joining nodes and drivers must say so.
    return subprocess_env(RAY_AUTH_MODE="token")


def alive_nodes(address: str) -> int:
    code = (
        f"import ray; ray.init(address={address!r}, configure_logging=False, log_to_driver=False)"
        "; print(sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=ray_env(), capture_output=True, text=True, timeout=120
    )
    return int(out.stdout.strip() or 0) if out.returncode == 0 else 0


def node_ids(address: str) -> set[str]:
    code = (
        f"import ray; ray.init(address={address!r}, configure_logging=False, log_to_driver=False)"
        "; print(' '.join(n['NodeID'] for n in ray.nodes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=ray_env(), capture_output=True, text=True, timeout=120
    )
    return set(out.stdout.split())


def start(*args: str) -> subprocess.Popen[bytes]:
    """`ray start --block ...` run by this very Python, so its workers import groupwise (a
    `ray` script on PATH may belong to an environment without it). --block: the process owns
    its Ray processes and stops them when terminated, so tearing this cluster down leaves any
    other Ray on the machine (the test session's own) alone."""
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *args]
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    return subprocess.Popen(
        [*command, *common], env=ray_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def cluster():
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes = [start("--head", f"--port={port}", "--include-dashboard=false")]
    try:
        deadline = time.monotonic() + 120
        while alive_nodes(address) < 1:
            assert time.monotonic() < deadline, "the Ray head did not come up"
            time.sleep(1)
        nodes.append(start(f"--address={address}"))
        while alive_nodes(address) < 2:
            assert time.monotonic() < deadline, "the second Ray node did not join"
            time.sleep(1)
        yield address
    finally:
        for process in reversed(nodes):
            process.terminate()
        for process in nodes:
            process.wait(timeout=60)
        # `ray start --head` records its address for later bare ray.init() calls; a terminated
        # head leaves the record behind, pointing at nothing. Remove ours.
        record = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if record.exists() and record.read_text().strip().endswith(f":{port}"):
            record.unlink()


def test_a_study_runs_on_both_nodes_of_a_real_cluster(cluster, tmp_path):
    (tmp_path / "space.yaml").write_text(
        "schemes: [single, module_type]\noptimizers: {adamw: {}, sgd: {}}\n"
    )
    (tmp_path / "study.yaml").write_text(
        "name: cluster\ntask: user_tasks:tiny\nsearch_space: space.yaml\nbudget: {trials: 6}\n"
        "training: {epochs: 2}\npruner: none\nworkers: {count: 2, cpus_per_trial: 1}\n"
    )
    exe = shutil.which("groupwise", path=str(Path(sys.executable).parent))
    assert exe, "the groupwise console script is not installed next to this Python"
    db = f"sqlite:///{tmp_path}/cluster.db"
    result = subprocess.run(
        [exe, "launch", "study.yaml", "--ray-address", cluster, "--storage", db],
        cwd=tmp_path,
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="cluster", storage=db).get_trials()
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    nodes = {t.user_attrs["groupwise.run"]["node"] for t in trials}
    # one CPU per node and one CPU per worker: Ray must place a worker on each node
    assert len(nodes) == 2, nodes


def test_the_service_runs_two_studies_at_once_on_the_clusters_workers(cluster, tmp_path):
    """`groupwise serve --ray-address`: two submitted studies share the cluster's two
    one-CPU nodes, each job a driver of its own."""
    from test_service import Server, post, study, wait_state

    storage = f"sqlite:///{tmp_path}/served.db"
    server = Server(
        storage,
        tmp_path,
        "--ray-address",
        cluster,
        "--allow-task-module",
        "user_tasks",
        env={"RAY_AUTH_MODE": "token"},
    ).start()
    try:
        with server.client() as client:
            for name in ("first", "second"):
                answer = post(client, study(name, trials=3, task="user_tasks:tiny"))
                assert answer.status_code == 201, answer.text
            for name in ("first", "second"):
                done = wait_state(client, name, "finished", "failed")
                assert done["state"] == "finished" and done["counts"]["complete"] == 3, done
    finally:
        server.kill(signal.SIGINT)
    nodes = set()
    for name in ("first", "second"):
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        nodes |= {t.user_attrs["groupwise.run"]["node"] for t in trials}
    assert nodes and nodes <= node_ids(cluster)  # every trial ran on a node of the cluster
