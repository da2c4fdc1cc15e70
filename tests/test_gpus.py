"""GPU scheduling without a GPU: Ray's logical GPU resources decide which worker gets which
device, and memory-aware admission and out-of-memory are checked on what they record."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from groupwise.config import TrialConfig
from groupwise.execution import launch, pick_device
from groupwise.execution._admission import estimate_memory
from groupwise.sampling import partition_facts
from groupwise.store import REASON_ATTR
from groupwise.store._attrs import RUN_ATTR
from groupwise.studyfiles import read_search_space, read_study
from paths import pythonpath, subprocess_env

TESTS = Path(__file__).parent
SPACE = """
schemes: [single]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}
  sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}
"""


def study_file(tmp_path: Path, task: str, trials: int, workers: str) -> Path:
    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "gpu.yaml"
    path.write_text(
        f"name: gpu\ntask: {task}\nsearch_space: space.yaml\nbudget: {{trials: {trials}}}\n"
        "training: {epochs: 2, batch_size: 32}\nsampler: {name: random}\npruner: none\n"
        f"workers: {workers}\nseed: 0\n"
    )
    return path


def test_the_device_is_the_one_ray_assigned():
    # Ray sets CUDA_VISIBLE_DEVICES to the worker's GPU, so whatever its index it is cuda:0.
    assert pick_device(["3"], cuda_available=True) == torch.device("cuda", 0)
    assert pick_device([], cuda_available=True) == torch.device("cpu")  # no GPU assigned
    assert pick_device(["0"], cuda_available=False) == torch.device("cpu")


def test_memory_estimate_counts_each_optimizers_own_state(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    facts = partition_facts(
        torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 2)),
        read_search_space(tmp_path / "space.yaml"),
    )
    n = 8 * 16 + 16 + 16 * 2 + 2  # parameters, float32

    def config(optimizer: str, **hp) -> TrialConfig:
        return TrialConfig.from_dict(
            {"scheme": "single", "groups": {"all": {"optimizer": optimizer, **hp}}}
        )

    adamw = estimate_memory(config("adamw", lr=1e-3), facts)
    assert (adamw.parameters, adamw.gradients, adamw.optimizer_state) == (4 * n, 4 * n, 8 * n)
    assert estimate_memory(config("sgd", lr=0.1, momentum=0.9), facts).optimizer_state == 4 * n
    assert estimate_memory(config("sgd", lr=0.1, momentum=0.0), facts).optimizer_state == 0


@pytest.mark.usefixtures("ray_local")
def test_trials_that_cannot_fit_are_not_started_and_are_infeasible(tmp_path):
    # tiny(hidden=256): 2,818 float32 parameters. Parameters + gradients + SGD momentum is
    # 33 KiB; AdamW's two buffers make it 44 KiB. Allow 40 KiB per trial.
    db = f"sqlite:///{tmp_path}/s.db"
    task = "{name: 'user_tasks:tiny', options: {hidden: 256}}"
    workers = "{count: 2, memory_per_trial_mb: 0.0390625}"
    result = launch(read_study(study_file(tmp_path, task, 10, workers)), storage=db)

    study = optuna.load_study(study_name="gpu", storage=db)
    trials = study.get_trials()
    by_optimizer = {
        o: [t for t in trials if t.params["all.optimizer"] == o] for o in ("adamw", "sgd")
    }
    assert by_optimizer["adamw"] and by_optimizer["sgd"]
    for t in by_optimizer["adamw"]:
        assert t.state == TrialState.PRUNED and not t.intermediate_values  # never trained
        assert t.constraints["memory"] == pytest.approx(44 * 1024 / (40 * 1024) - 1, rel=0.01)
        assert t.user_attrs[REASON_ATTR].startswith("out of memory (not started)")
    assert all(t.state == TrialState.COMPLETE and not t.constraints for t in by_optimizer["sgd"])
    assert study.best_trial.params["all.optimizer"] == "sgd"
    assert result.progress.finished == 10


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("fault", ["oom", "cuda_oom"])
def test_out_of_memory_while_training_is_an_infeasible_trial_not_a_crash(tmp_path, fault):
    db = f"sqlite:///{tmp_path}/s.db"
    marker = tmp_path / "oom.pid"
    task = f"{{name: 'user_tasks:faulty', options: {{fault: {fault}, marker: '{marker}'}}}}"
    result = launch(read_study(study_file(tmp_path, task, 4, "{count: 2}")), storage=db)

    trials = optuna.load_study(study_name="gpu", storage=db).get_trials()
    oom = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(oom) == 1 and marker.exists()
    assert oom[0].constraints == {"memory": 1.0}
    device = "cpu"  # these machines have none; the CUDA error type takes the same path
    assert oom[0].user_attrs[REASON_ATTR].startswith(f"out of memory on {device}: ")
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert result.progress.finished == 4


def test_fractional_gpus_pack_two_workers_on_each_logical_gpu(tmp_path):
    """A Ray instance with 2 logical GPUs; 4 workers at 0.5 GPU each. Run in a process of its
    own: this one's Ray (the ray_local fixture) has no GPUs."""
    db = f"sqlite:///{tmp_path}/s.db"
    path = study_file(
        tmp_path, "user_tasks:tiny", 12, "{count: 4, cpus_per_trial: 0.5, gpus_per_trial: 0.5}"
    )
    script = textwrap.dedent(f"""
        import ray
        from groupwise.execution import launch
        from groupwise.studyfiles import read_study
        ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False,
                 runtime_env={{"env_vars": {{"PYTHONPATH": {pythonpath()!r}}}}})
        launch(read_study({str(path)!r}), storage={db!r})
    """)
    env = subprocess_env()
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]

    trials = optuna.load_study(study_name="gpu", storage=db).get_trials()
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    runs = [t.user_attrs[RUN_ATTR] for t in trials]
    gpu_of_worker = {}
    for run in runs:
        assert len(run["gpu_ids"]) == 1  # half a GPU: one device id
        # The worker sees only its own device, as Ray assigned it.
        assert run["visible_devices"] == run["gpu_ids"][0]
        assert run["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
        gpu_of_worker.setdefault(run["pid"], set()).add(run["gpu_ids"][0])
    assert all(len(ids) == 1 for ids in gpu_of_worker.values())  # a worker keeps its GPU
    per_gpu = {}
    for pid, (gpu,) in gpu_of_worker.items():
        per_gpu.setdefault(gpu, set()).add(pid)
    assert sorted(per_gpu) == ["0", "1"]
    assert all(len(pids) == 2 for pids in per_gpu.values()), json.dumps(runs)
