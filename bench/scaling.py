"""Scaling against real PostgreSQL, and several drivers on one database.

    python bench/scaling.py [--postgres URL] [--trials 12] [--drivers 4] [--driver-trials 40]

1. Throughput: trials per minute of CPU-bound trials (char_rnn, real training) with 1, 2 and
   4 workers, the study on PostgreSQL. The ratio to 1 worker is printed beside each.
2. Concurrency: ``--drivers`` `groupwise launch` processes at once, each its own study, on one
   database: SQLite (one file) against PostgreSQL. Near-trivial trials, so the database is
   what they contend for. Reported: trials per minute over all drivers, failed launches,
   "database is locked" or other database errors in their output, and trials not COMPLETE.
3. The same with all drivers on one shared study (the budget is study-wide).

Each run gets a fresh PostgreSQL database, created and dropped here.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import ray
import sqlalchemy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import local_ray  # noqa: E402
from groupwise.execution import launch  # noqa: E402
from groupwise.studyfiles import read_study  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")
DB_ERRORS = ("database is locked", "OperationalError", "StorageInternalError", "deadlock")


@contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    name = f"groupwise_bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sqlalchemy.engine.make_url(admin_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def throughput(admin_url: str, directory: Path, trials: int) -> None:
    print(
        f"\n1. CPU-bound trials (char_rnn, {trials} trials of 2 x 30 steps, wall clock incl. worker start-up) on PostgreSQL"
    )
    print(
        f"  {'workers':>7} {'trials/min':>11} {'vs 1 worker':>12} "
        f"{'steady trials/min':>18} {'vs 1 worker':>12}"
    )
    local_ray.start(num_cpus=4)  # 4 logical CPUs so 4 workers fit; the machine has fewer cores
    base = steady_base = None
    try:
        for workers in (1, 2, 4):
            with fresh_postgres(admin_url) as url:
                spec = read_study(
                    local_ray.study_file(
                        directory,
                        f"scale{workers}",
                        task="char_rnn",
                        trials=trials,
                        training="{epochs: 2, steps_per_epoch: 30, batch_size: 64}",
                        workers=workers,
                    )
                )
                start = time.perf_counter()
                result = launch(spec, storage=url)
                rate = result.progress.complete / (time.perf_counter() - start) * 60
                # steady state: first trial start to last trial end (no worker start-up)
                done = optuna.load_study(study_name=spec.name, storage=url).get_trials()
                span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
                steady = len(done) / span.total_seconds() * 60
                base, steady_base = base or rate, steady_base or steady
                print(
                    f"  {workers:>7} {rate:>11.1f} {rate / base:>11.2f}x "
                    f"{steady:>18.1f} {steady / steady_base:>11.2f}x"
                )
    finally:
        ray.shutdown()


def drivers(url: str, directory: Path, count: int, trials: int, shared: bool) -> str:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    procs = []
    for i in range(count):
        name = "shared" if shared else f"driver{i}"
        path = local_ray.study_file(
            directory,
            name,
            task="trivial:trivial",
            trials=trials,
            training="{epochs: 1, batch_size: 1}",
            workers=1,
            file=f"{name}_{i}",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "groupwise", "launch", str(path), "--storage", url],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    start = time.perf_counter()
    outputs = [p.communicate(timeout=1800) for p in procs]
    wall = time.perf_counter() - start
    failed_launches = sum(p.returncode != 0 for p in procs)
    db_errors = sum(sum(o.count(e) + r.count(e) for e in DB_ERRORS) for o, r in outputs)
    studies = ["shared"] if shared else [f"driver{i}" for i in range(count)]
    all_trials = [
        t for s in studies for t in optuna.load_study(study_name=s, storage=url).get_trials()
    ]
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in all_trials)
    if failed_launches:
        for p, (_, err) in zip(procs, outputs, strict=True):
            if p.returncode:
                print("    a launch failed:", err.strip().splitlines()[-1][:200])
    return (
        f"{complete / wall * 60:>10.0f} {failed_launches:>9} {db_errors:>9} "
        f"{len(all_trials) - complete:>12} {complete:>9}"
    )


def concurrency(admin_url: str, directory: Path, count: int, trials: int) -> None:
    for shared in (False, True):
        what = "one shared study" if shared else "a study each"
        budget = trials * count if shared else trials
        print(f"\n{2 + shared}. {count} drivers at once, {what} ({budget} trials per study)")
        print(
            f"  {'database':<11} {'trials/min':>10} {'failed':>9} {'db errors':>9} "
            f"{'not COMPLETE':>12} {'complete':>9}"
        )
        sqlite = f"sqlite:///{directory}/{'shared' if shared else 'each'}.db"
        print(
            f"  {'SQLite':<11} "
            + drivers(sqlite, directory, count, budget if shared else trials, shared)
        )
        with fresh_postgres(admin_url) as url:
            print(
                f"  {'PostgreSQL':<11} "
                + drivers(url, directory, count, budget if shared else trials, shared)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "GROUPWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--drivers", type=int, default=4)
    parser.add_argument("--driver-trials", type=int, default=40)
    parser.add_argument("--no-throughput", action="store_true", help="only the drivers part")
    args = parser.parse_args()
    print(
        f"bench/scaling.py: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_throughput:
            throughput(args.postgres, Path(tmp), args.trials)
        if args.drivers:
            concurrency(args.postgres, Path(tmp), args.drivers, args.driver_trials)


if __name__ == "__main__":
    main()
