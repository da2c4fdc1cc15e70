"""Function tasks (``task: {train: "module:function"}``): the user's own training function runs
in the worker, a report at a time, with everything the built-in loop gets. Every assertion reads
the trials and groupwise's tables back from the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from groupwise.config import TrialConfig
from groupwise.errors import SpecError
from groupwise.execution import launch
from groupwise.plan import make_plan
from groupwise.store import REASON_ATTR, RETRIED_ATTR, open_storage
from groupwise.store._attrs import RUN_ATTR
from groupwise.store._records import read_epochs, read_runs
from groupwise.studyfiles import read_study

HERE = Path(__file__).parent
SPACE = """
schemes: [single, module_type]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}
  sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}
schedule: {warmup: 0.1, decay: cosine, final_lr_fraction: 0.1}
"""


def study_file(
    tmp_path: Path, train: str, *, trials: int = 3, options: str = "{}", **keys: str
) -> Path:
    (tmp_path / "space.yaml").write_text(SPACE)
    rest = "".join(f"{k}: {v}\n" for k, v in keys.items())
    path = tmp_path / "fn.yaml"
    path.write_text(
        f"name: fn\ntask: {{train: '{train}', options: {options}}}\nsearch_space: space.yaml\n"
        f"budget: {{trials: {trials}}}\nsampler: {{name: random}}\nseed: 0\n"
        + ("pruner: none\nworkers: {count: 2}\n" if not keys else "")
        + rest
    )
    return path


def trials_of(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="fn", storage=url).get_trials()


@pytest.mark.usefixtures("ray_local")
def test_a_function_tasks_reports_land_in_the_same_tables(tmp_path, storage_url):
    result = launch(read_study(study_file(tmp_path, "user_functions:train")), storage=storage_url)
    trials = trials_of(storage_url)
    assert (
        [t.state for t in trials]
        == [TrialState.COMPLETE] * 3
        == [TrialState.COMPLETE] * result.progress.finished
    )
    with open_storage(storage_url).engine.connect() as connection:
        runs = {r.trial_number: r for r in read_runs(connection, "fn")}
        rows = read_epochs(connection, "fn")
        for trial in trials:
            run = runs[trial.number]
            epochs = [row for number, row in rows if number == trial.number]
            assert [e.epoch for e in epochs] == [1, 2, 3] == sorted(trial.intermediate_values)
            assert [e.val_loss for e in epochs] == [trial.intermediate_values[e] for e in (1, 2, 3)]
            assert trial.value == epochs[-1].val_loss  # objective.reduce: last
            assert all(e.train_loss is not None and e.train_loss > 0 for e in epochs)
            # each group's lr as the schedule set it at the report: warmup + cosine, decaying
            config = TrialConfig.from_json(trial.user_attrs["groupwise.config"])
            label = next(iter(config.groups))
            peak = config.groups[label].hyperparameters["lr"]
            lrs = [e.lrs[label] for e in epochs]
            assert lrs[0] > lrs[1] > lrs[2] == pytest.approx(0.1 * peak)
            assert run.state == "COMPLETE" and run.pid is not None and run.host
            where = trial.user_attrs[RUN_ATTR]
            assert where["pid"] == run.pid
            assert where["training"] == {"function": "user_functions:train", "total_steps": 18}


@pytest.mark.usefixtures("ray_local")
def test_pruning_stops_a_function_mid_run(tmp_path):
    url = f"sqlite:///{tmp_path}/fn.db"
    marker = tmp_path / "stopped.txt"
    path = study_file(
        tmp_path,
        "user_functions:train",
        trials=4,
        options=f"{{fault: bad_every_other, marker: '{marker}'}}",
        pruner="{name: median, options: {n_startup_trials: 1, n_warmup_steps: 0}}",
        workers="{count: 1}",
    )
    launch(read_study(path), storage=url)
    trials = trials_of(url)
    states = [t.state for t in trials]
    assert states == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    for pruned in (trials[1], trials[3]):
        assert sorted(pruned.intermediate_values) == [1]  # stopped at its first report
    # the pruned function unwound through its own code: TrialPruned raised at its report
    assert marker.read_text().splitlines()[0] == "1"


@pytest.mark.usefixtures("ray_local")
def test_a_function_that_raises_fails_with_its_line_and_the_study_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path}/fn.db"
    path = study_file(tmp_path, "user_functions:train", trials=2, options="{fault: raise}")
    launch(read_study(path), storage=url)
    trials = trials_of(url)
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    for trial in trials:
        reason = trial.user_attrs[REASON_ATTR]
        assert reason.startswith("RuntimeError: boom: this training function fails on purpose")
        assert "user_functions.py:" in reason
        assert sorted(trial.intermediate_values) == [1]  # its first epoch was recorded


@pytest.mark.usefixtures("ray_local")
def test_a_function_that_hangs_times_out(tmp_path):
    url = f"sqlite:///{tmp_path}/fn.db"
    path = study_file(
        tmp_path,
        "user_functions:train",
        trials=1,
        options="{fault: hang}",
        pruner="none",
        workers="{count: 1}",
        faults="{trial_timeout_s: 20}",
    )
    launch(read_study(path), storage=url)
    (trial,) = trials_of(url)
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs[REASON_ATTR].startswith("timeout: still training after")


@pytest.mark.usefixtures("ray_local")
def test_a_function_whose_worker_is_killed_is_retried(tmp_path):
    url = f"sqlite:///{tmp_path}/fn.db"
    marker = tmp_path / "killed.pid"
    path = study_file(
        tmp_path,
        "user_functions:train",
        trials=2,
        options=f"{{fault: kill, marker: '{marker}'}}",
        pruner="none",
        workers="{count: 1}",
        faults="{max_retries: 2}",
    )
    launch(read_study(path), storage=url)
    trials = trials_of(url)
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(lost) == 1 and lost[0].user_attrs[REASON_ATTR].startswith("worker lost: ")
    assert lost[0].user_attrs[RETRIED_ATTR] is True
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and lost[0].params in [t.params for t in done]
    assert all(t.user_attrs[RUN_ATTR]["pid"] != int(marker.read_text()) for t in done)


@pytest.mark.usefixtures("ray_local")
def test_a_returned_value_is_the_trials_and_bad_reports_are_failures(tmp_path):
    url = f"sqlite:///{tmp_path}/fn.db"
    launch(read_study(study_file(tmp_path, "user_functions:returns_value", trials=2)), storage=url)
    for trial in trials_of(url):
        assert trial.state == TrialState.COMPLETE
        config = TrialConfig.from_json(trial.user_attrs["groupwise.config"])
        lrs = [g.hyperparameters["lr"] for g in config.groups.values()]
        assert trial.value == pytest.approx(lrs[0], rel=1e-6)  # a 1-step run: its peak lr
    for name, says in [
        ("steps_go_back", "steps must increase; got step 1 after step 2"),
        ("wrong_metric", "reported [accuracy] at step 1, without objective.metric 'val_loss'"),
    ]:
        (tmp_path / name).mkdir()
        url = f"sqlite:///{tmp_path}/{name}/fn.db"
        path = study_file(tmp_path / name, f"user_functions:{name}", trials=1)
        launch(read_study(path), storage=url)
        (trial,) = trials_of(url)
        assert trial.state == TrialState.FAIL and says in trial.user_attrs[REASON_ATTR]
        if name == "steps_go_back":  # raised by our report: it names the user's line
            assert "(at user_functions.py:" in trial.user_attrs[REASON_ATTR]


@pytest.mark.parametrize(
    ("train", "says"),
    [
        (
            "user_functions:never_builds",
            "returned without calling trial.build(model, total_steps=N)",
        ),
        (
            "user_functions:raises_first",
            "raised before calling trial.build(model): ValueError: no data here",
        ),
        ("user_functions:two_arguments", "must take one argument, the trial"),
        ("user_functions:nowhere", "module 'user_functions' has no function 'nowhere'"),
        ("no_colon", "name the function as 'package.module:function'"),
        ("user_functions:raises_two_lines", "ValueError: no data here\nlook in /data instead"),
    ],
)
def test_a_function_task_that_cannot_run_is_one_line_before_anything_runs(
    tmp_path, monkeypatch, train, says
):
    monkeypatch.syspath_prepend(str(HERE))
    with pytest.raises(SpecError) as raised:
        make_plan(read_study(study_file(tmp_path, train)))
    assert says in str(raised.value) and str(tmp_path / "fn.yaml") in str(raised.value)


def test_validate_plans_a_function_task_from_its_model(tmp_path):
    """`validate` runs the function only up to trial.build: the model's groups are known."""
    path = study_file(tmp_path, "user_functions:train")
    run = subprocess.run(
        [sys.executable, "-m", "groupwise", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    assert run.returncode == 0, run.stderr
    assert "user_functions:train" in run.stdout
    assert "training: a function task trains as its function says" not in run.stderr
    (tmp_path / "own").mkdir()
    own = study_file(tmp_path / "own", "user_functions:train", training="{precision: bf16}")
    said = subprocess.run(
        [sys.executable, "-m", "groupwise", "validate", str(own)],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    assert said.returncode == 0 and "training: a function task trains as its function says" in (
        said.stderr
    )
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "groupwise",
            "validate",
            str(study_file(tmp_path, "user_functions:never_builds")),
        ],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "trial.build" in bad.stderr and "Traceback" not in bad.stderr
    # a user's message with a line break is still one line (errors.one_line)
    (tmp_path / "two").mkdir()
    two = study_file(tmp_path / "two", "user_functions:raises_two_lines")
    run = subprocess.run(
        [sys.executable, "-m", "groupwise", "validate", str(two)],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "ValueError: no data here | look in /data instead" in run.stderr


def test_validate_dry_run_runs_a_function_task_to_its_first_report(tmp_path):
    def validate(train: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / train).mkdir()
        path = study_file(tmp_path / train, f"user_functions:{train}")
        command = [sys.executable, "-m", "groupwise", "validate", "--dry-run", str(path)]
        return subprocess.run(command, capture_output=True, text=True, cwd=HERE)

    good = validate("train")
    assert good.returncode == 0, good.stderr
    assert "its first report: val_loss " in good.stdout and "train_loss " in good.stdout
    wrong = validate("wrong_metric")
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "objective.metric: task.train 'user_functions:wrong_metric' reported [accuracy]" in (
        wrong.stderr
    )


def test_the_own_loop_example_runs_from_the_repository_root(tmp_path):
    """The README's example, as a user runs it: the CLI, a private Ray, the file path relative
    to where they launch; its best config rebuilds the optimizer outside the study."""
    root = HERE.parent
    url = f"sqlite:///{tmp_path}/example.db"
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "groupwise",
            "launch",
            "examples/own_loop/study.yaml",
            "--trials",
            "2",
            "--storage",
            url,
        ],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    trials = optuna.load_study(study_name="own_loop", storage=url).get_trials()
    trials = [t for t in trials if t.state != TrialState.WAITING]  # recipes queued for later
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] for t in trials)
    sys.path.insert(0, str(root / "examples" / "own_loop"))
    try:
        import train as example  # the user's module, outside the study

        import groupwise

        net = example.model(16)
        optimizer, _ = groupwise.build(net, groupwise.load_best("own_loop", url), total_steps=4)
        assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(net.parameters()))
    finally:
        sys.path.remove(str(root / "examples" / "own_loop"))
        sys.modules.pop("train", None)
