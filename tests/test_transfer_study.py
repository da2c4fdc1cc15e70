"""A study that names a transfer target: checked before anything runs, its best config
carried there at the end of a launch and recorded with the study (report, the dashboard's
study attributes), and trained there on request (`groupwise transfer-check`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from groupwise.config import TrialConfig
from groupwise.execution import launch
from groupwise.studyfiles import read_study
from groupwise.tasks import resolve_task
from groupwise.transfer import transfer
from paths import subprocess_env

ROOT = Path(__file__).parent.parent


def study(tmp_path: Path, target: str, name: str = "small") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ntask: {{name: tabular_mlp, options: {{width: 16}}}}\n"
        f"search_space: {ROOT / 'search_spaces' / 'per_group.yaml'}\n"
        "budget: {trials: 3}\ntraining: {epochs: 2, steps_per_epoch: 5, batch_size: 32}\n"
        "sampler: {name: random}\npruner: none\nworkers: {count: 1}\n"
        f"transfer: {target}\n"
    )
    return path


def groupwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "groupwise", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=600,
    )


@pytest.mark.usefixtures("ray_local")
def test_the_best_config_is_carried_to_the_target_recorded_and_checked_there(tmp_path):
    db = f"sqlite:///{tmp_path}/s.db"
    result = launch(read_study(study(tmp_path, "{options: {width: 64}}")), storage=db)
    assert result.transferred is not None and result.best_config is not None
    proxy, target = (resolve_task("tabular_mlp", {"width": w}).make_model() for w in (16, 64))
    expected = transfer(result.best_config, proxy, target, "sp-per-layer")
    assert result.transferred.config == expected
    recorded = optuna.load_study(study_name="small", storage=db).user_attrs["groupwise.transfer"]
    assert recorded["target"] == {"name": "tabular_mlp", "options": {"width": 64}}
    assert recorded["trial"] == result.progress.best_trial
    assert TrialConfig.from_dict(recorded["config"]) == expected

    checked = groupwise("transfer-check", "small", "--seeds", "2", "--storage", db, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "small at tabular_mlp {width: 64}: val_loss" in checked.stdout
    check = optuna.load_study(study_name="small", storage=db).user_attrs["groupwise.transfer_check"]
    assert len(check["values"]) == 2 and check["seeds"][0] != check["seeds"][1]
    assert check["mean"] == pytest.approx(sum(check["values"]) / 2)

    reported = groupwise("report", "small", "-o", "r", "--storage", db, cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<h2>Transferred config</h2>" in page and "carried to tabular_mlp {width: 64}" in page
    assert check["summary"].split(" over ")[0] in page


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("{options: {width: 64, blocks: 3}}", "transfer: the target is another architecture"),
        ("{options: {width: 64}, rule: mu}", "transfer: unknown transfer rule 'mu'"),
        ("{options: {widht: 64}}", "transfer: task 'tabular_mlp' takes options [width, blocks"),
        ("{task: nope, options: {}}", "unknown task 'nope'"),
    ],
)
def test_a_bad_target_is_refused_before_anything_runs(tmp_path, target, said):
    done = groupwise("launch", str(study(tmp_path, target)), cwd=tmp_path)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "groupwise.db").exists()


@pytest.mark.usefixtures("ray_local")
def test_transfer_check_of_several_studies_names_the_one_that_scored_best_there(tmp_path):
    """One proxy searched twice (here: two studies), each best carried to one width: each is
    trained and recorded as alone, and the one that scored best there is named."""
    db = f"sqlite:///{tmp_path}/s.db"
    for seed, name in enumerate(("one", "two")):  # other seeds: other configs, other scores
        path = study(tmp_path, "{options: {width: 32}}", name)
        path.write_text(path.read_text() + f"seed: {seed + 1}\n")
        launch(read_study(path), storage=db)
    done = groupwise("transfer-check", "one", "two", "--storage", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    means = {
        name: optuna.load_study(study_name=name, storage=db).user_attrs["groupwise.transfer_check"][
            "mean"
        ]
        for name in ("one", "two")
    }
    assert means["one"] != means["two"]
    best = min(means, key=means.__getitem__)
    lines = done.stdout.strip().splitlines()
    assert [line.split(" at ")[0] for line in lines[:2]] == ["one", "two"]
    assert lines[2].startswith(f"best at tabular_mlp {{width: 32}}: {best}; carry it on")


def test_the_best_check_follows_the_objective_and_skips_diverged_studies():
    from groupwise.transfer import TransferCheck, best_checked

    checks = {
        "low": TransferCheck("acc", (1,), (0.2,), None),
        "high": TransferCheck("acc", (1,), (0.9,), None),
        "lost": TransferCheck("acc", (1, 2), (float("inf"), 0.95), None),
    }
    assert best_checked(checks, {"direction": "minimize"}) == "low"
    assert best_checked(checks, {"metric": "acc", "direction": "maximize"}) == "high"
    assert best_checked({"lost": checks["lost"]}, {}) is None


@pytest.mark.usefixtures("ray_local")
def test_transfer_check_refuses_studies_carried_to_other_targets_before_training(tmp_path):
    db = f"sqlite:///{tmp_path}/s.db"
    for name, width in (("narrow", 32), ("wide", 64)):
        target = f"{{options: {{width: {width}}}}}"
        launch(read_study(study(tmp_path, target, name)), storage=db)
    done = groupwise("transfer-check", "narrow", "wide", "--storage", db, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    said = "studies 'narrow' and 'wide' are carried to other targets (tabular_mlp {width: 32}"
    assert said in done.stderr and "compare studies of one target" in done.stderr
    for name in ("narrow", "wide"):  # nothing trained, nothing recorded
        attrs = optuna.load_study(study_name=name, storage=db).user_attrs
        assert "groupwise.transfer_check" not in attrs


def test_transfer_check_of_a_study_without_a_target_names_the_fix(tmp_path):
    db = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="plain", storage=db)
    done = groupwise("transfer-check", "plain", "--storage", db, cwd=tmp_path)
    assert done.returncode == 2 and "records no transferred config" in done.stderr


def test_a_carried_config_that_diverges_at_the_target_is_a_result_said_so():
    """A transfer-check seed whose training diverges (the carried lr too large wide) is
    recorded as diverged, not raised: the record holds no inf, the line says how many."""
    from groupwise.transfer import TransferCheck

    check = TransferCheck("val_loss", (1, 2), (float("inf"), 0.5), 0.4)
    assert check.summary() == "val_loss: diverged on 1 of 2 seeds"
    document = check.to_dict()
    assert document["values"] == [None, 0.5] and document["mean"] is None


@pytest.mark.parametrize(
    ("device", "said"),
    [("gpu0", "--device: 'gpu0' is not a device"), ("cuda:7", "this machine has no CUDA")],
)
def test_transfer_check_refuses_a_device_it_cannot_use_in_one_line(device, said):
    from groupwise.errors import ConfigError
    from groupwise.transfer import check_transfer

    if device.startswith("cuda") and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=said):
        check_transfer(
            {"target": {"name": "tabular_mlp", "options": {}}}, {}, {}, [1], device=device
        )
