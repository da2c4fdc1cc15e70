"""Where a launch's start goes: from the command to the first trial's start, and its phases;
then a small study of ~1 s trials against plain Optuna.

    python bench/fast_start.py [--rounds 3] [--trials 2] [--study-rounds 3]

Each round runs, as fresh processes with a private Ray (imports included, as `groupwise
launch` pays them), on a study of ``--trials`` near-trivial trials (bench/trivial.py) on
SQLite: ``launch`` (the whole launch, fast start on: seconds from the process's start to the
first trial's start, its ``datetime_start``, to the last trial's end and to the process's
end), ``ray-first`` (the same with ``GROUPWISE_FAST_START=0``: trials wait for Ray's
workers), and ``phases`` (Ray's path one step at a time: the driver's imports, the plan,
Ray's start, the workers' start, the study's database). Reported: medians over the rounds.

``--study-rounds``: 20 trials of the held-out GRU LM (bench/unseen_tasks.py, ~1 s each on
one thread), AdamW's lr and weight decay, TPE seeded alike, 2 at a time, SQLite: `groupwise
launch` (fast start on and off) against plain Optuna in one process (``study.optimize``,
``n_jobs=2``, the same training code: groupwise's ``Trainer``), each a fresh process, in
turn. Reported: each round's wall-clock, command to exit, and the best value; 0 skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_ray

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHILD = """
import sys, time
began = float(sys.argv[1])
from groupwise.execution import launch
from groupwise.plan import make_plan
from groupwise.studyfiles import read_study
spec = read_study(sys.argv[2])
launch(make_plan(spec), storage=sys.argv[3])
"""
PHASES = """
import os, sys, time
os.environ["GROUPWISE_FAST_START"] = "0"  # Ray's path, step by step
t0 = time.perf_counter()
from groupwise.execution._launch import _identity, _ledger, _pool
from groupwise.plan import make_plan
from groupwise.studyfiles import read_study
t1 = time.perf_counter()
spec = read_study(sys.argv[2])
plan = make_plan(spec)
t2 = time.perf_counter()
pool = _pool(spec, None)
pool.start()
t3 = time.perf_counter()
pool.wait_started()
t4 = time.perf_counter()
_ledger(plan, sys.argv[3], _identity(plan))
t5 = time.perf_counter()
pool.close()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
"""
PHASE_NAMES = ("imports", "plan", "Ray's start", "workers' start", "database")


def one(mode: str, trials: int, tmp: Path) -> list[float]:
    study = tmp / f"{mode}.yaml"
    study.write_text(
        f"name: {mode}\ntask: trivial:trivial\n"
        f"search_space: {ROOT / 'search_spaces' / 'seeds_mixed.yaml'}\n"
        f"budget: {{trials: {trials}}}\ntraining: {{epochs: 1}}\nworkers: {{count: 2}}\nseed: 0\n"
    )
    db = tmp / f"{mode}.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": f"{HERE}:{os.environ.get('PYTHONPATH', '')}"}
    env["GROUPWISE_FAST_START"] = "0" if mode == "ray-first" else "1"
    began = time.time()
    ran = subprocess.run(
        [sys.executable, "-c", PHASES if mode == "phases" else CHILD, str(began), str(study), url],
        check=True,
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    ended = time.time()
    if mode == "phases":
        return [float(x) for x in ran.stdout.split()[-len(PHASE_NAMES) :]]
    done = optuna.load_study(study_name=mode, storage=url).get_trials()
    first = min(t.datetime_start.timestamp() for t in done if t.datetime_start)
    last = max(t.datetime_complete.timestamp() for t in done if t.datetime_complete)
    return [first - began, last - began, ended - began]


GRU_SPACE = """schemes: [single]
optimizers:
  adamw:
    lr: {low: 1.0e-4, high: 3.0e-2, log: true}
    weight_decay: {low: 1.0e-6, high: 0.3, log: true}
"""
GRU_TRAINING = {"epochs": 2, "steps_per_epoch": 20, "batch_size": 32}
PLAIN = """
import json, sys
import optuna, torch
from groupwise.config import TrialConfig
from groupwise.tasks import resolve_task
from groupwise.training import Trainer, TrainingOptions

torch.set_num_threads(1)
task = resolve_task("unseen_tasks:gru_lm", {}, seed=0)
options = TrainingOptions(**json.loads(sys.argv[2]))

def objective(trial):
    groups = {"all": {"optimizer": "adamw",
                      "lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
                      "weight_decay": trial.suggest_float("weight_decay", 1e-6, 0.3, log=True)}}
    config = TrialConfig.from_dict({"scheme": "single", "groups": groups})
    trainer = Trainer(task, config, seed=0, device=torch.device("cpu"), options=options)
    for _ in range(options.epochs):
        report = trainer.run_epoch()
    return report.metrics["val_loss"]

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(study_name="plain", storage=sys.argv[1],
                            sampler=optuna.samplers.TPESampler(seed=0))
study.optimize(objective, n_trials=20, n_jobs=2)
"""
STUDY_MODES = ("plain Optuna", "groupwise", "groupwise, Ray first")


def study_round(mode: str, tmp: Path) -> tuple[float, float]:
    """(seconds from the command to its exit, the best value) of one 20-trial GRU study."""
    db = tmp / "gru.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": f"{HERE}:{os.environ.get('PYTHONPATH', '')}"}
    env["GROUPWISE_FAST_START"] = "0" if mode.endswith("Ray first") else "1"
    if mode == "plain Optuna":
        command = [sys.executable, "-c", PLAIN, url, json.dumps(GRU_TRAINING)]
        name = "plain"
    else:
        (tmp / "adamw.yaml").write_text(GRU_SPACE)
        study = local_ray.study_file(
            tmp,
            "gru",
            task="unseen_tasks:gru_lm",
            trials=20,
            training=json.dumps(GRU_TRAINING),  # JSON is YAML
            space=tmp / "adamw.yaml",
            file="gru",
        )
        groupwise = Path(sys.executable).parent / "groupwise"
        command = [str(groupwise), "launch", str(study), "--storage", url]
        name = "gru"
    began = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=tmp, capture_output=True, text=True)
    wall = time.perf_counter() - began
    return wall, optuna.load_study(study_name=name, storage=url).best_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--study-rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"bench/fast_start.py {' '.join(sys.argv[1:])}")
    print(f"{platform.machine()}, {os.cpu_count()} cores, {args.trials} trivial trials, 2 workers")
    results: dict[str, list[list[float]]] = {"launch": [], "ray-first": [], "phases": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in results:
                results[mode].append(one(mode, args.trials, Path(tmp)))
                print(f"  round {r} {mode:<9} " + " ".join(f"{x:6.2f}" for x in results[mode][-1]))
    for mode in ("launch", "ray-first") if args.rounds else ():
        first, last, end = (statistics.median(r[i] for r in results[mode]) for i in range(3))
        print(
            f"{mode}: first trial starts at {first:.2f} s, last ends at {last:.2f} s, "
            f"exit {end:.2f} s"
        )
    if args.rounds:
        phases = [statistics.median(r[i] for r in results["phases"]) for i in range(5)]
        print(
            "phases: "
            + ", ".join(f"{n} {x:.2f} s" for n, x in zip(PHASE_NAMES, phases, strict=True))
        )
    if args.study_rounds:
        studies(args.study_rounds)


def studies(rounds: int) -> None:
    print(f"20 GRU trials, {GRU_TRAINING}, 2 at a time, {rounds} rounds (each mode in turn)")
    walls: dict[str, list[float]] = {mode: [] for mode in STUDY_MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode in STUDY_MODES:
                wall, best = study_round(mode, Path(tmp))
                walls[mode].append(wall)
                print(f"  round {r} {mode:<22} {wall:6.2f} s  best {best:.4f}")
    plain = statistics.median(walls["plain Optuna"])
    for mode in STUDY_MODES:
        median = statistics.median(walls[mode])
        print(f"{mode}: median {median:.2f} s, {median / plain:.2f}x plain Optuna")


if __name__ == "__main__":
    main()
