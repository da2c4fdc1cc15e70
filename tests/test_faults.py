"""Faults injected for real: a worker SIGKILLed mid-trial, a trial that hangs past its
timeout, retries running out. Every assertion reads the final trials from the database."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from groupwise.analysis import study_status
from groupwise.execution import launch
from groupwise.store import REASON_ATTR, RETRIED_ATTR, open_storage
from groupwise.store._attrs import ATTEMPT_ATTR, RETRY_OF_ATTR, RUN_ATTR
from groupwise.store._records import read_runs
from groupwise.studyfiles import read_study

pytestmark = pytest.mark.usefixtures("ray_local")

SPACE = """
schemes: [single, module_type]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}
  sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}
"""


def study_file(tmp_path: Path, task: str, trials: int, faults: str, workers: int = 2) -> Path:
    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "faults.yaml"
    path.write_text(
        f"name: faults\ntask: {task}\nsearch_space: space.yaml\n"
        f"budget: {{trials: {trials}}}\ntraining: {{epochs: 3, batch_size: 32}}\n"
        f"sampler: {{name: random}}\npruner: none\nworkers: {{count: {workers}}}\n"
        f"faults: {faults}\nseed: 0\n"
    )
    return path


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials the budget counts: finished, and not superseded by a retry."""
    return [t for t in trials if t.state.is_finished() and not t.user_attrs.get(RETRIED_ATTR)]


def test_a_worker_killed_mid_trial_is_retried_on_a_new_worker(tmp_path, storage_url):
    marker = tmp_path / "killed.pid"
    task = f"{{name: 'user_tasks:faulty', options: {{fault: kill, marker: '{marker}'}}}}"
    spec = read_study(study_file(tmp_path, task, trials=5, faults="{max_retries: 2}"))
    result = launch(spec, storage=storage_url)

    trials = optuna.load_study(study_name="faults", storage=storage_url).get_trials()
    killed_pid = int(marker.read_text())  # the model SIGKILLed this worker process
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(lost) == 1, [(t.number, t.user_attrs.get(REASON_ATTR)) for t in lost]
    assert lost[0].user_attrs[REASON_ATTR].startswith("worker lost: ")
    assert lost[0].user_attrs[RETRIED_ATTR] is True
    retry = [t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == lost[0].number]
    assert len(retry) == 1
    assert retry[0].params == lost[0].params and retry[0].user_attrs[ATTEMPT_ATTR] == 2
    assert retry[0].state == TrialState.COMPLETE
    # The actor was replaced: nothing ran on the dead process after the kill.
    assert retry[0].user_attrs[RUN_ATTR]["pid"] != killed_pid
    # The budget is reached exactly: the lost attempt is superseded, not counted.
    assert len(counted(trials)) == 5 == result.progress.finished
    assert [t.state for t in counted(trials)] == [TrialState.COMPLETE] * 5
    assert result.progress.retried == 1
    with open_storage(storage_url).engine.connect() as connection:
        runs = {r.trial_number: r for r in read_runs(connection, "faults")}
    assert runs[lost[0].number].state == "FAIL" and runs[lost[0].number].attempt == 1
    assert runs[lost[0].number].reason.startswith("worker lost: ")
    assert runs[retry[0].number].attempt == 2
    assert runs[retry[0].number].retry_of == lost[0].number
    assert runs[retry[0].number].state == "COMPLETE"
    status = study_status(storage_url, "faults")[0]  # what `groupwise status` prints
    assert (status.counts.complete, status.counts.failed, status.counts.retried) == (5, 0, 1)
    assert status.fail_reasons == ((lost[0].number, "FAIL: " + lost[0].user_attrs[REASON_ATTR]),)


def test_retries_run_out_and_the_last_failure_counts(tmp_path):
    db = f"sqlite:///{tmp_path}/s.db"
    task = "{name: 'user_tasks:faulty', options: {fault: kill, at: 2}}"  # every model dies
    spec = read_study(study_file(tmp_path, task, trials=2, faults="{max_retries: 1}"))
    result = launch(spec, storage=db)

    trials = optuna.load_study(study_name="faults", storage=db).get_trials()
    assert all(t.state == TrialState.FAIL for t in trials)
    assert all(t.user_attrs[REASON_ATTR].startswith("worker lost") for t in trials)
    firsts = [t for t in trials if ATTEMPT_ATTR not in t.user_attrs]
    retries = [t for t in trials if t.user_attrs.get(ATTEMPT_ATTR) == 2]
    assert len(firsts) == 2 and len(retries) == 2 and len(trials) == 4
    assert all(t.user_attrs.get(RETRIED_ATTR) for t in firsts)
    assert not any(t.user_attrs.get(RETRIED_ATTR) for t in retries)  # max_retries reached
    assert {t.user_attrs[RETRY_OF_ATTR] for t in retries} == {t.number for t in firsts}
    assert result.progress.finished == 2 and result.progress.failed == 2


def test_a_trial_past_its_timeout_fails_with_its_reason_and_the_rest_go_on(tmp_path):
    """One trial hangs (an hour); the others end at once. The limit is generous (they take
    well under a second of training), and it times training only, not worker start-up, so
    a busy machine cannot fail the quick ones."""
    db = f"sqlite:///{tmp_path}/s.db"
    marker = tmp_path / "hung.pid"
    task = f"{{name: 'user_tasks:faulty', options: {{fault: hang, marker: '{marker}'}}}}"
    faults = "{trial_timeout_s: 30, heartbeat_s: 1, stale_after_s: 5}"
    spec = read_study(study_file(tmp_path, task, trials=4, faults=faults))
    result = launch(spec, storage=db)

    trials = optuna.load_study(study_name="faults", storage=db).get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and marker.exists()
    assert failed[0].user_attrs[REASON_ATTR].startswith("timeout: still training after")
    assert not failed[0].user_attrs.get(RETRIED_ATTR)  # it would time out again
    assert len(trials) == 4 and result.progress.finished == 4
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    # and the launch returned at all: the hang (an hour) was cut off


def test_a_running_trial_that_never_had_a_heartbeat_is_adopted_not_waited_for(tmp_path):
    """A RUNNING trial with no heartbeat row (an older groupwise, a crash before the first
    heartbeat) would never read as stale. A launch adopts it; it goes stale and is retried."""
    db = f"sqlite:///{tmp_path}/s.db"
    faults = "{heartbeat_s: 1, stale_after_s: 2}"
    path = study_file(tmp_path, "user_tasks:tiny", trials=1, faults=faults)
    launch(read_study(path), storage=db)
    orphan = optuna.load_study(study_name="faults", storage=db).ask()  # no heartbeat, ever

    result = launch(read_study(path).with_overrides(trials=3), storage=db)

    trials = optuna.load_study(study_name="faults", storage=db).get_trials()
    stale = trials[orphan.number]
    assert stale.state == TrialState.FAIL and stale.user_attrs[RETRIED_ATTR] is True
    assert stale.user_attrs[REASON_ATTR].startswith("stale: no heartbeat")
    assert [t.user_attrs.get(RETRY_OF_ATTR) for t in trials].count(orphan.number) == 1
    assert len(counted(trials)) == 3 == result.progress.finished


def test_the_timeout_times_training_not_worker_start_up(tmp_path):
    """Workers take 40 s to start, trials a fraction of a second to train (a few seconds on a
    machine busy with other work), and the limit is 20 s: a clock that counted start-up (the
    first, or a replacement's after a timeout) would fail every trial. Only the one that hangs
    (an hour) times out."""
    db = f"sqlite:///{tmp_path}/s.db"
    marker = tmp_path / "hung.pid"
    options = f"{{fault: hang, marker: '{marker}', startup_s: 40}}"
    task = f"{{name: 'user_tasks:faulty', options: {options}}}"
    spec = read_study(study_file(tmp_path, task, trials=6, faults="{trial_timeout_s: 20}"))
    result = launch(spec, storage=db)

    trials = optuna.load_study(study_name="faults", storage=db).get_trials()
    reasons = [t.user_attrs.get(REASON_ATTR) for t in trials if t.state == TrialState.FAIL]
    assert len(reasons) == 1 and reasons[0].startswith("timeout: still training after"), reasons
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5
    assert result.progress.finished == 6


def test_a_trial_whose_worker_exits_the_same_way_twice_is_not_retried_again(tmp_path):
    """Every model calls os._exit mid-trial: each trial is lost, retried once, lost the same
    way, and then left failed, not retried up to max_retries (each attempt pays a worker's
    start-up)."""
    db = f"sqlite:///{tmp_path}/s.db"
    task = "{name: 'user_tasks:faulty', options: {fault: exit, at: 2}}"
    spec = read_study(study_file(tmp_path, task, trials=2, faults="{max_retries: 3}"))
    result = launch(spec, storage=db)

    trials = optuna.load_study(study_name="faults", storage=db).get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.FAIL for t in trials)
    firsts = [t for t in trials if ATTEMPT_ATTR not in t.user_attrs]
    seconds = [t for t in trials if t.user_attrs.get(ATTEMPT_ATTR) == 2]
    assert len(firsts) == len(seconds) == 2
    assert all(t.user_attrs[REASON_ATTR].startswith("worker lost") for t in trials)
    assert all(t.user_attrs[RETRIED_ATTR] is True for t in firsts)
    for t in seconds:
        assert not t.user_attrs.get(RETRIED_ATTR)
        assert t.user_attrs[REASON_ATTR].endswith("not retried again)")
    assert result.progress.finished == 2 and result.progress.failed == 2


def test_each_trial_records_its_own_peak_memory(tmp_path):
    """One worker trains every trial; the first allocates (and touches) 256 MiB once. The
    trials after it on the same process record their own peak, not the process's lifetime
    peak the first one set."""
    db = f"sqlite:///{tmp_path}/s.db"
    marker = tmp_path / "alloc.pid"
    task = f"{{name: 'user_tasks:faulty', options: {{fault: alloc, at: 1, marker: '{marker}'}}}}"
    spec = read_study(study_file(tmp_path, task, trials=3, faults="{}", workers=1))
    launch(spec, storage=db)

    trials = optuna.load_study(study_name="faults", storage=db).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    peaks = [t.user_attrs[RUN_ATTR]["peak_memory_bytes"] for t in trials]
    pids = {t.user_attrs[RUN_ATTR]["pid"] for t in trials}
    assert len(pids) == 1 and int(marker.read_text()) in pids  # one process, trial 0 allocated
    assert peaks[0] >= 256 * 2**20
    assert all(peak < peaks[0] - 128 * 2**20 for peak in peaks[1:]), peaks


@pytest.mark.parametrize("made_by", ["groupwise", "optuna"])
def test_a_study_deleted_with_optunas_tools_can_be_created_again(tmp_path, storage_url, made_by):
    """By the relaunch, or first by Optuna's own create_study: either way the new study starts
    without the old one's groupwise rows."""
    path = study_file(tmp_path, "user_tasks:tiny", trials=2, faults="{}")
    launch(read_study(path), storage=storage_url)
    optuna.delete_study(study_name="faults", storage=storage_url)
    if made_by == "optuna":
        optuna.create_study(study_name="faults", storage=storage_url)

    result = launch(read_study(path), storage=storage_url)

    trials = optuna.load_study(study_name="faults", storage=storage_url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 and result.ran == 2
    with open_storage(storage_url).engine.connect() as connection:
        runs = read_runs(connection, "faults")  # the old study's rows are gone with it
    assert sorted(r.trial_number for r in runs) == [0, 1]
