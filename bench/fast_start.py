"""Where a launch's start goes: from the command to the first trial's start, and its phases.

    python bench/fast_start.py [--rounds 3] [--trials 2]

Each round runs, as fresh processes with a private Ray (imports included, as `groupwise
launch` pays them), on a study of ``--trials`` near-trivial trials (bench/trivial.py) on
SQLite: ``launch`` (the whole launch: seconds from the process's start to the first trial's
start, its ``datetime_start``, to the last trial's end and to the process's end), and
``phases`` (the same steps one at a time: the driver's imports, the plan, Ray's start, the
workers' start, the study's database). Reported: medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

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
import sys, time
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
    began = time.time()
    ran = subprocess.run(
        [sys.executable, "-c", CHILD if mode == "launch" else PHASES, str(began), str(study), url],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    print(f"bench/fast_start.py {' '.join(sys.argv[1:])}")
    print(f"{platform.machine()}, {os.cpu_count()} cores, {args.trials} trivial trials, 2 workers")
    results: dict[str, list[list[float]]] = {"launch": [], "phases": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in results:
                results[mode].append(one(mode, args.trials, Path(tmp)))
                print(f"  round {r} {mode:<7} " + " ".join(f"{x:6.2f}" for x in results[mode][-1]))
    first, last, end = (statistics.median(r[i] for r in results["launch"]) for i in range(3))
    print(
        f"launch: first trial starts at {first:.2f} s, last ends at {last:.2f} s, exit {end:.2f} s"
    )
    phases = [statistics.median(r[i] for r in results["phases"]) for i in range(len(PHASE_NAMES))]
    print(
        "phases: " + ", ".join(f"{n} {x:.2f} s" for n, x in zip(PHASE_NAMES, phases, strict=True))
    )


if __name__ == "__main__":
    main()
