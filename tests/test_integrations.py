"""The training-framework integrations, for real: Lightning studies run to their budget in Ray
workers, report and prune through groupwise's callback, and their best config rebuilds the same
optimizer groups outside the study; a missing framework is one line naming the extra."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import groupwise
from groupwise.config import TrialConfig
from groupwise.execution import launch
from groupwise.store import open_storage
from groupwise.store._records import read_epochs
from groupwise.studyfiles import read_study

HERE = Path(__file__).parent


def needs(module: str) -> pytest.MarkDecorator:
    """The README's setup installs the extras ([lightning,hf]): CI runs these for real."""
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None, reason=f"{module} is not installed"
    )


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
@needs("pytorch_lightning")
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


@pytest.mark.parametrize(
    ("module", "hidden", "package", "extra"),
    [
        ("lightning", "pytorch_lightning", "pytorch-lightning", "lightning"),
        ("hf", "transformers", "transformers", "hf"),
    ],
)
def test_a_missing_framework_is_one_line_naming_the_extra(module, hidden, package, extra):
    code = f"import sys; sys.modules[{hidden!r}] = None\nimport groupwise.integrations.{module}\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: groupwise.integrations.{module} needs {package}")
    assert f"pip install 'groupwise[{extra}]'" in last


@pytest.mark.parametrize(
    ("example", "name", "module"),
    [
        ("lightning", "lightning_wine", "pytorch_lightning"),
        ("hf_trainer", "hf_gpt2", "transformers"),
    ],
)
def test_the_examples_validate_from_the_repository_root(example, name, module):
    """`validate` runs each example's train() through its framework up to trial.build (Lightning:
    inside fit, at configure_optimizers), and plans from the model it gets."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    run = subprocess.run(
        [sys.executable, "-m", "groupwise", "validate", f"examples/{example}/study.yaml"],
        capture_output=True,
        text=True,
        cwd=HERE.parent,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"ok: study '{name}'" in run.stdout


@pytest.mark.usefixtures("ray_local")
@needs("transformers")
def test_an_hf_trainer_study_runs_to_its_budget_and_its_best_rebuilds_outside(tmp_path):
    url = f"sqlite:///{tmp_path}/fw.db"
    path = study_file(
        tmp_path,
        "user_hf:train",
        2,
        "{epochs: 2}",
        "pruner: none\nobjective: {metric: eval_loss}\n",
    )
    launch(read_study(path), storage=url)
    trials = optuna.load_study(study_name="fw", storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(sorted(t.intermediate_values) == [1, 2] for t in trials)
    # total_steps is the Trainer's own count: the schedule ends at its last step
    with open_storage(url).engine.connect() as connection:
        last = {n: row for n, row in read_epochs(connection, "fw") if row.epoch == 2}
    for trial in trials:
        config = TrialConfig.from_json(trial.user_attrs["groupwise.config"])
        for label, group in config.groups.items():
            peak = group.hyperparameters["lr"]
            assert last[trial.number].lrs[label] == pytest.approx(0.1 * peak)
    import user_hf

    best = groupwise.load_best("fw", url)
    net = user_hf.model()
    optimizer, _ = groupwise.build(net, best, total_steps=8)
    names = sorted(n for label in best.groups for n in optimizer.partition[label])
    assert names == sorted(n for n, _ in net.named_parameters())  # HF's names; lm_head tied
    assert "transformer.h.0.attn.c_attn.weight" in names and "lm_head.weight" not in names


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize(
    ("train", "module", "metric"),
    [
        ("user_lightning:train", "pytorch_lightning", "val_loss"),  # logged by the module
        ("user_hf:train", "transformers", "eval_constant"),  # the Trainer prefixes eval_
    ],
)
def test_pruning_stops_the_framework_mid_run(tmp_path, train, module, metric):
    """Every second trial reports 51 against the others' 1.0: the median pruner prunes it at
    its first report, the callback's report raises TrialPruned, and it comes out of the
    framework's fit/train (the function writes the marker as it passes)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    url = f"sqlite:///{tmp_path}/fw.db"
    marker = tmp_path / "pruned.txt"
    path = study_file(
        tmp_path,
        train,
        4,
        f"{{epochs: 3, bad_every_other: true, marker: '{marker}'}}",
        f"objective: {{metric: {metric}}}\n"
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
    assert marker.read_text().splitlines()[0] == "1"
