"""A fast start: local workers, forked from the launch, train its first trials while Ray
starts, and hand over to Ray's workers once they have started (execution._bridge).

The launches run as their own processes, as `groupwise launch` does: a fast start forks the
launching process, which must have no other thread (pytest's may have Ray's)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from groupwise.execution._bridge import OFF, bridge_refusal
from groupwise.execution._protocol import WorkerSettings
from paths import TESTS, subprocess_env

SPACE = TESTS.parent / "search_spaces" / "seeds_mixed.yaml"

STUDY = """\
name: fast
task: user_tasks:tiny
search_space: {space}
budget: {{trials: 6}}
training: {{epochs: 2, batch_size: 16}}
sampler: {{name: tpe, options: {{n_startup_trials: 2}}}}
workers: {{count: 2, cpus_per_trial: 1, reproducible: true}}
seed: 3
"""


def _python(args: list[str], cwd, code: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    """Python run with ``args`` as its own process (the tests folder importable); it must
    exit with ``code``."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == code, done.stderr
    return done


def _launch(tmp_path, name: str, fast: bool) -> list[tuple]:
    """Launch the study as the CLI does; its runs: (number, params, value, node, pid)."""
    study = tmp_path / f"{name}.yaml"
    study.write_text(STUDY.format(space=SPACE).replace("name: fast", f"name: {name}"))
    db = tmp_path / f"{name}.db"
    launch = ["-m", "groupwise", "launch", str(study), "--storage", f"sqlite:///{db}"]
    done = _python(launch, tmp_path, **{OFF: "1" if fast else "0"})
    assert "SIGTERM handler" not in done.stderr  # Ray's notice when started from a thread
    with sqlite3.connect(db) as sql:
        params = {
            number: json.loads(value)
            for number, value in sql.execute(
                "SELECT t.number, json_group_object(p.param_name, p.param_value) FROM trials t "
                "JOIN trial_params p ON p.trial_id = t.trial_id GROUP BY t.number"
            )
        }
        runs = sql.execute(
            "SELECT trial_number, value, node, pid FROM groupwise_runs ORDER BY trial_number"
        ).fetchall()
    return [(n, params[n], value, node, pid) for n, value, node, pid in runs]


def test_local_workers_train_as_rays_do(tmp_path):
    """The same reproducible study, started on local workers and on Ray's: the same trials,
    the same values to the bit. The fast one never started Ray (it ended first): its trials
    ran in processes other than the launch's, with no Ray node."""
    fast = _launch(tmp_path, "fast", fast=True)
    ray_first = _launch(tmp_path, "slow", fast=False)
    assert [r[:3] for r in fast] == [r[:3] for r in ray_first]
    assert len(fast) == 6 and all(value is not None for _, _, value, _, _ in fast)
    assert {node for *_, node, _ in fast} == {None}
    assert None not in {node for *_, node, _ in ray_first}
    assert len({pid for *_, pid in fast}) == 2  # one process a worker, kept across trials


def test_a_study_retries_the_trial_of_a_local_worker_that_died(tmp_path):
    """A fast start's local worker SIGKILLed mid-trial: the trial is lost and retried
    elsewhere (the other local worker, or Ray's, which start at once), the study completes
    its budget, and nothing ran on the dead process after."""
    marker = tmp_path / "killed.pid"
    task = f"{{name: 'user_tasks:faulty', options: {{fault: kill, at: 4, marker: '{marker}'}}}}"
    study = tmp_path / "faulty.yaml"
    study.write_text(
        STUDY.format(space=SPACE)
        .replace("task: user_tasks:tiny", f"task: {task}")
        .replace("trials: 6", "trials: 4")
    )
    db = tmp_path / "faulty.db"
    _python(["-m", "groupwise", "launch", str(study), "--storage", f"sqlite:///{db}"], tmp_path)
    killed = int(marker.read_text())
    with sqlite3.connect(db) as sql:
        runs = sql.execute(
            "SELECT trial_number, state, reason, retry_of, pid, node FROM groupwise_runs"
        ).fetchall()
    lost = [r for r in runs if r[1] == "FAIL"]
    assert len(lost) == 1 and lost[0][2].startswith("worker lost: the local worker exited")
    retry = [r for r in runs if r[3] == lost[0][0]]
    assert len(retry) == 1 and retry[0][1] == "COMPLETE" and retry[0][4] != killed
    assert sorted(r[1] for r in runs if r[3] is not None or r[1] != "FAIL") == ["COMPLETE"] * 4


HANDOVER = """
import json, os, signal, sys, time
from groupwise.execution import _bridge
from groupwise.execution._launch import _pool
from groupwise.execution._protocol import Lost, Trained
from groupwise.studyfiles import read_study

_bridge.RAY_AFTER_S = 3600.0  # Ray starts only when a local worker is lost
spec = read_study(sys.argv[1])
pool = _pool(spec, None)
assert isinstance(pool, _bridge.BridgedPool), type(pool)
pool.start()
config = {"scheme": "single", "groups": {"all": {"optimizer": "sgd", "lr": 0.1}}}
events = []
deadline = time.monotonic() + 300  # a hang guard only: nothing below is timed


def reply(slot):
    while time.monotonic() < deadline:
        got = pool.wait(5.0)
        if got is not None and got[0] == slot:
            return got[1]
    raise SystemExit("no reply")


def train(slot):  # a whole trial, two epochs
    pool.submit(slot, config, 0)
    first = reply(slot)
    pool.submit(slot, None)
    second = reply(slot)
    pool.release(slot)
    return first, second


while not pool.free() and time.monotonic() < deadline:
    pool.wait(1.0)
slot = pool.free()[0]
events.append(("first trial on a local slot", slot >= 2))
first, second = train(slot)
events.append(("local: trained", isinstance(second, Trained) and second.placement.node is None))
events.append(("ray not started", pool.thread.is_alive() and not pool.up.is_set()))
# a local worker that died is lost when given a trial, not waited for; and Ray starts now
victim = pool.free()[0]
worker = pool.local[victim - 2]
os.kill(worker.process.pid, signal.SIGKILL)
worker.process.join()
pool.submit(victim, config, 0)
events.append(("killed: lost", isinstance(reply(victim), Lost)))
events.append(("killed: gone", pool.local[victim - 2] is None and pool.go.is_set()))
# Ray's workers start (the local one left yields them the CPU); then every free slot is Ray's
while (pool.ray is None or any(s.starting for s in pool.ray.slots)) and time.monotonic() < deadline:
    pool.wait(1.0)
free = pool.free()
events.append(("ray's slots", free == [0, 1]))
events.append(("local workers stopped", all(w is None for w in pool.local)))
first, second = train(free[0])
events.append(("ray: trained", isinstance(second, Trained) and second.placement.node is not None))
pool.close()
print(json.dumps(events))
"""


def test_local_workers_hand_over_to_rays(tmp_path):
    """The first trial trains on a local worker while Ray waits; a local worker that died is
    answered Lost when given a trial, is not replaced, and starts Ray at once; once Ray's
    workers have started, only Ray's slots are free and the local workers are gone."""
    study = tmp_path / "fast.yaml"
    study.write_text(STUDY.format(space=SPACE))
    script = tmp_path / "handover.py"
    script.write_text(textwrap.dedent(HANDOVER))
    done = _python([str(script), str(study)], tmp_path)
    events = json.loads(done.stdout.strip().splitlines()[-1])
    assert [name for name, ok in events if not ok] == [], events


def _settings(**changes) -> WorkerSettings:
    return WorkerSettings(**{"task": "tiny", "task_options": {}, "seed": 0, "cpus": 1, **changes})


@pytest.mark.parametrize(
    ("settings", "gpus", "address", "says"),
    [
        (_settings(), 0, "127.0.0.1:6380", "a Ray cluster the launch joins"),
        (_settings(), 0.5, None, "only CPU workers of one thread"),
        (_settings(cpus=2), 0, None, "only CPU workers of one thread"),
        (_settings(batch=4), 0, None, "one candidate each"),
    ],
)
def test_a_fast_start_only_where_local_workers_train_as_rays_would(settings, gpus, address, says):
    assert says in bridge_refusal(settings, 1, gpus, address)


def test_no_fast_start_when_asked_or_beside_other_threads(monkeypatch):
    """GROUPWISE_FAST_START=0 turns it off; a process running other threads is not forked
    (the child would hold their locks without them)."""
    monkeypatch.setenv(OFF, "0")
    assert bridge_refusal(_settings(), 1, 0, None) == f"{OFF}=0"
    monkeypatch.delenv(OFF)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert "other threads" in bridge_refusal(_settings(), 1, 0, None)
    finally:
        stop.set()
        other.join()


def test_a_fast_start_setting_other_than_0_or_1_is_one_line_before_anything_runs(tmp_path):
    """GROUPWISE_FAST_START=off is not read as "on": the launch says what it takes, exit 2,
    and no study is written."""
    study = tmp_path / "fast.yaml"
    study.write_text(STUDY.format(space=SPACE))
    db = tmp_path / "fast.db"
    launch = ["-m", "groupwise", "launch", str(study), "--storage", f"sqlite:///{db}"]
    done = _python(launch, tmp_path, code=2, **{OFF: "off"})
    assert done.stderr.count("\n") == 1 and f"{OFF}='off': use 1" in done.stderr
    assert not db.exists()
