"""Faults that need whole processes: the driver SIGKILLed mid-study and launched again, the
PostgreSQL server restarted under a running study, two drivers sharing one study. Each
`groupwise launch` here is a real process with its own local Ray cluster; every assertion
reads the final trials from the database."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import polling
from groupwise.store import (
    CONFIRMS_ATTR,
    DUPLICATE_ATTR,
    REASON_ATTR,
    RETRIED_ATTR,
    TRAIN_SEED_ATTR,
    open_storage,
)
from groupwise.store._attrs import (
    ATTEMPT_ATTR,
    CANONICAL_ATTR,
    RECIPE_ATTR,
    RETRY_OF_ATTR,
    RUN_ATTR,
)
from groupwise.store._records import read_epochs, read_runs
from paths import default_sigint, subprocess_env

TESTS = Path(__file__).parent
SPACE = """
schemes: [single, module_type]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}
  sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}
"""


def study_file(
    tmp_path: Path,
    trials: int,
    workers: int = 2,
    name: str = "resume",
    delay_s: float = 0.04,
    faults: str = "heartbeat_s: 1, stale_after_s: 3",
    sampler: str = "random",
    recipes: bool = False,
) -> Path:
    """A slow, fault-free task (about a second per trial at the default delay), quick
    heartbeats."""
    space = SPACE.replace("[single, module_type]", "[single, module_type, decay_split]")
    (tmp_path / "space.yaml").write_text(
        space + "warm_start: [adamw, decay_split]\n" if recipes else SPACE
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        f"task: {{name: 'user_tasks:faulty', options: {{fault: none, delay_s: {delay_s}}}}}\n"
        f"search_space: space.yaml\nbudget: {{trials: {trials}}}\n"
        f"training: {{epochs: 3, batch_size: 32}}\nsampler: {{name: {sampler}}}\npruner: none\n"
        f"workers: {{count: {workers}}}\nfaults: {{{faults}}}\nseed: 0\n"
    )
    return path


def start_launch(path: Path, storage: str) -> subprocess.Popen[str]:
    env = subprocess_env()
    return subprocess.Popen(
        [sys.executable, "-m", "groupwise", "launch", str(path), "--storage", storage],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the test can clean up Ray's leftovers
        preexec_fn=default_sigint,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def trials_of(storage: str, name: str = "resume") -> list[optuna.trial.FrozenTrial]:
    return polling.trials_of(storage, name)


def delete_for_real(storage: str, name: str, attempts: int = 100) -> None:
    """optuna.delete_study, again until the study is gone: racing a writer (a launch adding a
    row under the study), Optuna 5.0 swallows the IntegrityError and deletes nothing."""
    for _ in range(attempts):
        if name not in optuna.get_all_study_names(storage):
            return
        with contextlib.suppress(KeyError):  # gone between the check and the delete
            optuna.delete_study(study_name=name, storage=storage)
    raise AssertionError(f"{name} could not be deleted in {attempts} attempts")


def wait_for(storage: str, ready, timeout: float = 120) -> list[optuna.trial.FrozenTrial]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = trials_of(storage)
        if ready(trials):
            return trials
        time.sleep(0.2)
    raise AssertionError(f"timed out; trials: {[(t.number, t.state.name) for t in trials]}")


def assert_recorded_alike(storage: str, trials: list[optuna.trial.FrozenTrial]) -> None:
    """groupwise's rows say what Optuna's say: no run half-recorded, whenever the driver died."""
    with open_storage(storage).engine.connect() as connection:
        runs = {r.trial_number: r for r in read_runs(connection, "resume")}
        epochs = read_epochs(connection, "resume")
    started = [t for t in trials if t.state != TrialState.WAITING]
    assert sorted(runs) == sorted(t.number for t in started)
    for t in started:
        assert runs[t.number].state == t.state.name
        trained = runs[t.number].duplicate_of  # a replay's epochs are its original's
        trained = t.number if trained is None else trained
        mine = {e.epoch: e.metric for n, e in epochs if n == trained}
        assert mine == t.intermediate_values, t.number


def count(trials, state: TrialState) -> int:
    return sum(t.state == state for t in trials)


def counted(trials) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state.is_finished() and not t.user_attrs.get(RETRIED_ATTR)]


def test_a_killed_driver_resumes_with_stale_trials_retried(tmp_path, storage_url):
    path = study_file(tmp_path, trials=8)
    first = start_launch(path, storage_url)
    try:
        before = wait_for(
            storage_url,
            lambda ts: count(ts, TrialState.COMPLETE) >= 2 and count(ts, TrialState.RUNNING) >= 1,
        )
        first.send_signal(signal.SIGKILL)  # the driver alone, mid-study
        first.wait(timeout=30)
    finally:
        kill_group(first)  # then Ray's processes it left behind
    at_kill = {t.number: t for t in trials_of(storage_url)}
    assert_recorded_alike(storage_url, list(at_kill.values()))  # the crash split no record
    left_running = [n for n, t in at_kill.items() if t.state == TrialState.RUNNING]
    done = {n: t.value for n, t in at_kill.items() if t.state == TrialState.COMPLETE}
    assert left_running and len(done) >= 2 and len(before) <= len(at_kill)
    time.sleep(4)  # past stale_after_s (3 s) since the dead driver's last heartbeat

    out, _ = finish(start_launch(path, storage_url))

    trials = trials_of(storage_url)
    by_number = {t.number: t for t in trials}
    # "N this launch" counts the trials the relaunch trained to a counted end, not the dead
    # driver's stale attempts it failed (they are retried, and their retries are what count).
    finished_before = len(counted(list(at_kill.values())))
    (this_launch,) = re.findall(r"(\d+) this launch", out)
    assert int(this_launch) == 8 - finished_before, out
    # Nothing finished was lost or changed.
    assert {n: by_number[n].value for n in done} == done
    # Already stale when the relaunch opened the study: failed (and retried) before it started
    # any trial, not given a fresh heartbeat and waited for again.
    failed_at = max(by_number[n].datetime_complete for n in left_running)
    new = [t for t in trials if t.number not in at_kill]
    assert new and all(t.datetime_start >= failed_at for t in new)
    # Every trial the dead driver left RUNNING was failed as stale and retried once.
    for n in left_running:
        stale = by_number[n]
        assert stale.state == TrialState.FAIL
        assert stale.user_attrs[REASON_ATTR].startswith("stale: no heartbeat")
        assert stale.user_attrs[RETRIED_ATTR] is True
        retries = [t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == n]
        assert len(retries) == 1 and retries[0].params == stale.params
        assert retries[0].user_attrs[ATTEMPT_ATTR] == 2
        assert retries[0].state == TrialState.COMPLETE
    # Exactly the budget, nothing counted twice, nothing left behind.
    assert len(counted(trials)) == 8
    assert all(t.state == TrialState.COMPLETE for t in counted(trials))
    assert count(trials, TrialState.RUNNING) == count(trials, TrialState.WAITING) == 0
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert_recorded_alike(storage_url, trials)


def test_a_driver_killed_while_confirming_loses_no_confirmation_nor_runs_one_twice(
    tmp_path, storage_url
):
    """The driver is SIGKILLed while the leaders' confirmations run. The relaunch fails the
    stale ones and retries them as the same confirmations (same leader, same fresh seed);
    the ones already finished stay; each (leader, seed) ends with exactly one counted trial."""
    path = study_file(tmp_path, trials=8)
    path.write_text(path.read_text() + "confirm: {top: 2, seeds: 2}\n")
    first = start_launch(path, storage_url)
    try:
        wait_for(
            storage_url,
            lambda ts: any(
                CONFIRMS_ATTR in t.user_attrs and t.state == TrialState.RUNNING for t in ts
            ),
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        kill_group(first)
    at_kill = {t.number: (t.state, t.value) for t in trials_of(storage_url)}
    time.sleep(4)  # past stale_after_s

    finish(start_launch(path, storage_url))

    trials = trials_of(storage_url)
    assert all(
        at_kill[n] == (t.state, t.value)
        for n, t in enumerate(trials)
        if n in at_kill and at_kill[n][0].is_finished()
    )  # nothing finished changed
    confirmations = [t for t in counted(trials) if CONFIRMS_ATTR in t.user_attrs]
    pairs = [(t.user_attrs[CONFIRMS_ATTR], t.user_attrs[TRAIN_SEED_ATTR]) for t in confirmations]
    assert len(pairs) == len(set(pairs)) == 4
    assert all(t.state == TrialState.COMPLETE for t in confirmations)
    stale = [t for t in trials if CONFIRMS_ATTR in t.user_attrs and t.user_attrs.get(RETRIED_ATTR)]
    assert stale and all(t.user_attrs[REASON_ATTR].startswith("stale") for t in stale)
    assert len(counted(trials)) == 8
    assert count(trials, TrialState.RUNNING) == count(trials, TrialState.WAITING) == 0


def test_the_study_survives_a_postgresql_restart(tmp_path, private_postgres):
    url = private_postgres.url
    proc = start_launch(study_file(tmp_path, trials=10), url)
    try:
        wait_for(url, lambda ts: count(ts, TrialState.COMPLETE) >= 2)
        private_postgres.restart(3.0)  # a real stop (fast shutdown: sessions are cut), then start
        _, err = finish(proc)
    finally:
        kill_group(proc)
    trials = trials_of(url)
    assert "database unreachable" in err  # the driver did meet the outage, and waited it out
    assert len(trials) == 10 and all(t.state == TrialState.COMPLETE for t in trials)
    assert_recorded_alike(url, trials)


@pytest.mark.parametrize(("sampler", "recipes"), [("random", False), ("tpe", True)])
def test_two_drivers_share_one_study(tmp_path, storage_url, sampler, recipes):
    """Two drivers started at once on one study: the same seed, the same recipes. A config
    that trains identically is trained once (before, both drivers' first proposals were the
    same config, and both counted)."""
    path = study_file(tmp_path, trials=10, workers=1, sampler=sampler, recipes=recipes)
    procs = [start_launch(path, storage_url) for _ in range(2)]
    for proc in procs:
        finish(proc)

    trials = trials_of(storage_url)
    trained = [t for t in trials if t.state.is_finished() and DUPLICATE_ATTR not in t.user_attrs]
    keys = [t.user_attrs[CANONICAL_ATTR] for t in trained if not t.user_attrs.get(RETRIED_ATTR)]
    assert len(keys) == len(set(keys)), sorted(keys)
    if recipes:  # each recipe once, whichever driver took it
        names = [t.user_attrs[RECIPE_ATTR] for t in trials if RECIPE_ATTR in t.user_attrs]
        assert sorted(names) == ["adamw", "decay_split"], names
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert count(trials, TrialState.RUNNING) == count(trials, TrialState.WAITING) == 0
    # Each driver stops when the study-wide count reaches the budget; two drivers racing
    # for the last trial can overshoot it by one each.
    assert 10 <= len(counted(trials)) <= 11
    assert all(t.state == TrialState.COMPLETE for t in trials)
    drivers = {t.user_attrs[RUN_ATTR]["driver"] for t in trials if RUN_ATTR in t.user_attrs}
    assert len(drivers) == 2, drivers


@pytest.mark.parametrize(
    ("sent", "delay_s"),
    [(signal.SIGINT, 0.04), (signal.SIGTERM, 0.04), (signal.SIGINT, 0.0), (signal.SIGTERM, 0.0)],
    ids=["ctrl-c", "sigterm", "ctrl-c-short-epochs", "sigterm-short-epochs"],
)
def test_an_interrupted_launch_enqueues_its_running_trials_for_the_next(tmp_path, sent, delay_s):
    """Ctrl-C, or SIGTERM (what `docker stop` and `kill` send), while trials run: with short
    epochs the signal often lands while a result is being written. Every trial the driver
    started ends FAIL ("interrupted") and is retried by the next launch; none stays RUNNING."""
    storage = f"sqlite:///{tmp_path}/s.db"
    path = study_file(tmp_path, trials=6 if delay_s else 100, delay_s=delay_s)
    first = start_launch(path, storage)
    try:
        wait_for(
            storage,
            lambda ts: count(ts, TrialState.COMPLETE) >= 1 and count(ts, TrialState.RUNNING) >= 1,
        )
        first.send_signal(sent)
        _, err = first.communicate(timeout=120)
    finally:
        kill_group(first)
    assert first.returncode == 130, err[-2000:]  # not 134: Ray did not abort the process
    assert "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("interrupted: the running trials"), err[-2000:]
    stopped = trials_of(storage)
    interrupted = [t for t in stopped if t.state == TrialState.FAIL]
    assert count(stopped, TrialState.RUNNING) == 0
    assert interrupted or not delay_s  # short trials may all have ended as the signal came
    for t in interrupted:
        assert t.user_attrs[REASON_ATTR].startswith("interrupted")
        assert t.user_attrs[RETRIED_ATTR] is True
    waiting = [t for t in stopped if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs[RETRY_OF_ATTR] for t in waiting) == sorted(
        t.number for t in interrupted
    )

    finish(start_launch(path, storage))
    trials = trials_of(storage)
    assert len(counted(trials)) == (6 if delay_s else 100)
    assert count(trials, TrialState.WAITING) == 0
    for t in interrupted:
        (retry,) = [r for r in trials if r.user_attrs.get(RETRY_OF_ATTR) == t.number]
        assert retry.state == TrialState.COMPLETE and retry.params == t.params


def test_ctrl_c_however_often_loses_no_config(tmp_path, storage_url):
    """Ctrl-C, relaunch, Ctrl-C again as the relaunch retries the interrupted configs, four
    times over, with max_retries 1. An interrupt is not the trial's fault: it never counts
    against max_retries, so no config ends FAIL "interrupted" unretried (before, the second
    interrupt of one config failed it for good and spent the budget), and the study ends
    with exactly its budget, every trial complete."""
    faults = "heartbeat_s: 1, stale_after_s: 3, max_retries: 1"
    path = study_file(tmp_path, trials=6, delay_s=0.1, faults=faults)
    for attempt in range(1, 5):  # each launch is interrupted while attempt N of a config runs
        proc = start_launch(path, storage_url)
        try:
            wait_for(
                storage_url,
                lambda ts, n=attempt: any(
                    t.state == TrialState.RUNNING and t.user_attrs.get(ATTEMPT_ATTR, 1) == n
                    for t in ts
                ),
                timeout=300,
            )
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
        finally:
            kill_group(proc)
        assert proc.returncode == 130, err[-2000:]
    finish(start_launch(path, storage_url))
    trials = trials_of(storage_url)
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert lost and all(t.user_attrs.get(RETRIED_ATTR) for t in lost)
    assert all(t.user_attrs[REASON_ATTR].startswith("interrupted") for t in lost)
    assert max(t.user_attrs.get(ATTEMPT_ATTR, 1) for t in trials) >= 4  # past max_retries
    assert len(counted(trials)) == 6
    assert all(t.state == TrialState.COMPLETE for t in counted(trials))
    assert count(trials, TrialState.RUNNING) == count(trials, TrialState.WAITING) == 0


def test_a_database_gone_past_its_patience_stops_the_launch_in_one_line(tmp_path, private_postgres):
    """PostgreSQL stops and stays down. The launch waits faults.database_patience_s for the
    whole outage (one deadline, however many writes meet it), then stops with one line and
    no traceback. With the database gone its running trials cannot be recorded; the next
    launch, the server back, finds them stale and retries them before anything else."""
    url = private_postgres.url
    faults = "heartbeat_s: 1, stale_after_s: 3, database_patience_s: 5"
    path = study_file(tmp_path, trials=12, faults=faults)
    proc = start_launch(path, url)
    try:
        wait_for(
            url, lambda ts: count(ts, TrialState.COMPLETE) >= 2 and count(ts, TrialState.RUNNING)
        )
        private_postgres.stop()
        _, err = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    private_postgres.start()
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: lost the study database") and "within 5 s" in last, last
    assert err.count("lost the study database") == 1, err[-3000:]  # said once
    at_stop = {t.number: t for t in trials_of(url)}
    left_running = [n for n, t in at_stop.items() if t.state == TrialState.RUNNING]
    time.sleep(4)  # past stale_after_s since the stopped driver's last heartbeat

    finish(start_launch(path, url))

    trials = trials_of(url)
    by_number = {t.number: t for t in trials}
    for n in left_running:
        assert by_number[n].user_attrs[REASON_ATTR].startswith("stale: no heartbeat")
    assert len(counted(trials)) == 12
    assert count(trials, TrialState.RUNNING) == count(trials, TrialState.WAITING) == 0
    assert_recorded_alike(url, trials)


def test_a_study_deleted_under_a_running_launch_stops_it_in_one_line(tmp_path, storage_url):
    proc = start_launch(study_file(tmp_path, trials=40), storage_url)
    try:
        wait_for(storage_url, lambda ts: count(ts, TrialState.COMPLETE) >= 1)
        delete_for_real(storage_url, "resume")
        _, err = proc.communicate(timeout=120)
    finally:
        kill_group(proc)
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "is gone from the database" in last and "Launch it again" in last, last

    finish(start_launch(study_file(tmp_path, trials=3), storage_url))  # anew, same name

    trials = trials_of(storage_url)
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert_recorded_alike(storage_url, trials)
