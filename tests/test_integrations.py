"""The training-framework integrations, for real: Lightning studies run to their budget in Ray
workers, report and prune through groupwise's callback, and their best config rebuilds the same
optimizer groups outside the study; a missing framework is one line naming the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import groupwise
from groupwise.execution import launch
from groupwise.studyfiles import read_study

pytest.importorskip("pytorch_lightning")  # installed by the README's setup ([lightning])

HERE = Path(__file__).parent
SPACE = """
schemes: [single, decay_split]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}, weight_decay: {low: 0.0, high: 0.1}}
schedule: {warmup: 0.1, decay: cosine, final_lr_fraction: 0.1}
"""


def study_file(tmp_path: Path, train: str, trials: int, options: str, extra: str = "") -> Path:
    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "study.yaml"
    path.write_text(
        f"name: fw\ntask: {{train: '{train}', options: {options}}}\nsearch_space: space.yaml\n"
        f"budget: {{trials: {trials}}}\nsampler: {{name: random}}\nseed: 0\n{extra}"
    )
    return path


@pytest.mark.usefixtures("ray_local")
def test_a_lightning_study_runs_to_its_budget_and_its_best_rebuilds_outside(tmp_path):
    url = f"sqlite:///{tmp_path}/fw.db"
    path = study_file(tmp_path, "user_lightning:train", 3, "{epochs: 3}", "pruner: none\n")
    launch(read_study(path), storage=url)
    trials = optuna.load_study(study_name="fw", storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial in trials:
        assert sorted(trial.intermediate_values) == [1, 2, 3]
        assert trial.value == trial.intermediate_values[3]
    # the best config, in the user's own code: the same groups the study trained
    import user_lightning

    best = groupwise.load_best("fw", url)
    module = user_lightning.Module(None, bad=False)  # type: ignore[arg-type]
    optimizer, _ = groupwise.build(module, best, total_steps=18)
    assert [g["label"] for g in optimizer.param_groups] == list(best.groups)
    names = [n for label in best.groups for n in optimizer.partition[label]]
    assert sorted(names) == sorted(n for n, _ in module.named_parameters())


@pytest.mark.usefixtures("ray_local")
def test_pruning_stops_lightning_fit_mid_run(tmp_path):
    url = f"sqlite:///{tmp_path}/fw.db"
    marker = tmp_path / "pruned.txt"
    path = study_file(
        tmp_path,
        "user_lightning:train",
        4,
        f"{{epochs: 3, bad_every_other: true, marker: '{marker}'}}",
        "pruner: {name: median, options: {n_startup_trials: 1, n_warmup_steps: 0}}\n"
        "workers: {count: 1}\n",
    )
    launch(read_study(path), storage=url)
    trials = optuna.load_study(study_name="fw", storage=url).get_trials()
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    assert sorted(trials[1].intermediate_values) == [1]
    assert marker.read_text().splitlines()[0] == "1"  # Lightning's fit saw TrialPruned


def test_a_missing_framework_is_one_line_naming_the_extra():
    code = (
        "import sys; sys.modules['pytorch_lightning'] = None\n"
        "import groupwise.integrations.lightning\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: groupwise.integrations.lightning needs pytorch-lightning")
    assert "pip install 'groupwise[lightning]'" in last


def test_the_lightning_example_validates_from_the_repository_root():
    """`validate` runs the example's train() through Lightning's fit up to its
    configure_optimizers (trial.build), and plans from the LightningModule it gets."""
    run = subprocess.run(
        [sys.executable, "-m", "groupwise", "validate", "examples/lightning/study.yaml"],
        capture_output=True,
        text=True,
        cwd=HERE.parent,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ok: study 'lightning_wine'" in run.stdout
