"""Fault injection, end to end. Each scenario runs a small study as real `groupwise launch`
processes, breaks something for real (a signal to the driver, a worker or the raylet; a
PostgreSQL server stopped; a task that hangs or exits), launches again where the fault ended
a launch, and reads the outcome back from the database: trials by state, retries, budget
spent on repeats, time to recover, tracebacks printed.

    python bench/faults.py                   # every scenario (~12 min on 2 CPUs)
    python bench/faults.py --only sigterm    # some of them

Needs PostgreSQL's server binaries (initdb, pg_ctl) for the database scenarios; it starts
servers of its own on free ports. Results: bench/results/faults.json and a Markdown table.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna

from groupwise.store import DUPLICATE_ATTR, RETRIED_ATTR
from groupwise.store._attrs import CANONICAL_ATTR, RETRY_OF_ATTR

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fault tasks (user_tasks) and PrivatePostgres

from private_pg import PrivatePostgres  # noqa: E402

NAME = "faults"
SPACE = """
schemes: [single, module_type]
optimizers:
  adamw: {lr: {low: 1.0e-3, high: 3.0e-2, log: true}}
  sgd: {lr: {low: 1.0e-2, high: 0.5, log: true}, momentum: 0.9}
"""
QUICK = "heartbeat_s: 1, stale_after_s: 5"  # the defaults are 10 s and 60 s


@dataclass
class Outcome:
    scenario: str
    fault: str
    budget: int
    states: dict[str, int] = field(default_factory=dict)
    retries: int = 0  # retry attempts enqueued (and run)
    over_budget: int = 0  # finished trials counted beyond the budget
    repeats: int = 0  # configs trained and counted more than once
    recover_s: float | None = None
    recover_what: str = ""
    exit_codes: list[int | None] = field(default_factory=list)
    tracebacks: int = 0


def _default_sigint() -> None:
    """A bench started in the background (`cmd &`) ignores SIGINT, and its children inherit
    that; the launches must take Ctrl-C as a terminal would deliver it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """One scenario's study file, database and launches."""

    def __init__(self, work: Path, storage: str, budget: int, task: str, faults: str) -> None:
        self.storage, self.budget = storage, budget
        (work / "space.yaml").write_text(SPACE)
        self.path = work / f"{NAME}.yaml"
        self.path.write_text(
            f"name: {NAME}\ntask: {task}\nsearch_space: space.yaml\n"
            f"budget: {{trials: {budget}}}\ntraining: {{epochs: 3, batch_size: 32}}\n"
            "sampler: {name: random}\npruner: none\nworkers: {count: 2}\n"
            f"faults: {{{faults}}}\nseed: 0\n"
        )
        self.procs: list[subprocess.Popen[str]] = []
        self.errs: list[str] = []

    def start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
        url = self.storage
        proc = subprocess.Popen(
            [sys.executable, "-m", "groupwise", "launch", str(self.path), "--storage", url],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own group: Ray's processes die with it
            preexec_fn=_default_sigint,
        )
        self.procs.append(proc)
        return proc

    def end(self, proc: subprocess.Popen[str], timeout: float = 600) -> None:
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            err = "(did not exit: killed)"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.errs.append(err)

    def launch(self) -> None:
        self.end(self.start())

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        try:
            return optuna.load_study(study_name=NAME, storage=self.storage).get_trials()
        except KeyError:
            return []

    def wait_for(self, ready: Callable[[list[optuna.trial.FrozenTrial]], bool]) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if ready(self.trials()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.path}: the study never got there")

    def outcome(self, scenario: str, fault: str) -> Outcome:
        trials = self.trials()
        counted = [
            t
            for t in trials
            if t.state.is_finished()
            and not t.user_attrs.get(RETRIED_ATTR)
            and DUPLICATE_ATTR not in t.user_attrs
        ]
        configs = collections.Counter(t.user_attrs.get(CANONICAL_ATTR) for t in counted)
        return Outcome(
            scenario,
            fault,
            self.budget,
            states=dict(collections.Counter(t.state.name for t in trials)),
            retries=sum(RETRY_OF_ATTR in t.user_attrs for t in trials),
            over_budget=len(counted) - self.budget,
            repeats=sum(n - 1 for n in configs.values()),
            exit_codes=[p.returncode for p in self.procs],
            tracebacks=sum(err.count("Traceback") for err in self.errs),
        )


def running(n: int = 1) -> Callable[[list[optuna.trial.FrozenTrial]], bool]:
    def ready(trials: list[optuna.trial.FrozenTrial]) -> bool:
        states = collections.Counter(t.state.name for t in trials)
        return states["COMPLETE"] >= 1 and states["RUNNING"] >= n

    return ready


def slow_task(delay_s: float = 0.02) -> str:
    return f"{{name: 'user_tasks:faulty', options: {{fault: none, delay_s: {delay_s}}}}}"


def first_start_after(trials: list[optuna.trial.FrozenTrial], moment: dt.datetime) -> float:
    starts = [t.datetime_start for t in trials if t.datetime_start and t.datetime_start > moment]
    return round((min(starts) - moment).total_seconds(), 1) if starts else float("nan")


def retries_start(trials: list[optuna.trial.FrozenTrial], moment: dt.datetime) -> float:
    """Seconds from ``moment`` until the last retry began (all the lost trials running again)."""
    starts = [t.datetime_start for t in trials if RETRY_OF_ATTR in t.user_attrs]
    starts = [s for s in starts if s is not None]
    return round((max(starts) - moment).total_seconds(), 1) if starts else float("nan")


def group_pids(proc: subprocess.Popen[str], pattern: str) -> list[int]:
    """Processes of the launch's session (Ray's workers get process groups of their own)
    whose command line matches ``pattern``."""
    found = subprocess.run(
        ["pgrep", "-s", str(proc.pid), "-f", pattern], capture_output=True, text=True
    )
    return [int(p) for p in found.stdout.split()]


# -- scenarios ------------------------------------------------------------------------------
def worker_sigkill(work: Path, storage: str) -> Outcome:
    run = Run(work, storage, 8, slow_task(0.04), QUICK)
    proc = run.start()
    run.wait_for(running())
    workers = group_pids(proc, "ray::_RayWorker")
    killed = dt.datetime.now()
    os.kill(workers[0], signal.SIGKILL)
    run.end(proc)
    out = run.outcome("worker SIGKILL", "kill -9 one worker process mid-trial")
    out.recover_s = retries_start(run.trials(), killed)
    out.recover_what = "kill -> its trial's retry started"
    return out


def raylet_sigkill(work: Path, storage: str) -> Outcome:
    run = Run(work, storage, 8, slow_task(0.04), QUICK)
    proc = run.start()
    run.wait_for(running())
    for pid in group_pids(proc, "raylet"):
        os.kill(pid, signal.SIGKILL)
    run.end(proc, timeout=300)  # Ray's driver goes down with its raylet
    relaunched = dt.datetime.now()
    run.launch()
    out = run.outcome("raylet SIGKILL", "kill -9 the private Ray's raylet, relaunch")
    out.recover_s = retries_start(run.trials(), relaunched)
    out.recover_what = "relaunch -> every lost trial's retry started"
    return out


def driver_sigkill(work: Path, storage: str, faults: str, wait_s: float) -> Outcome:
    run = Run(work, storage, 8, slow_task(0.04), faults)
    proc = run.start()
    run.wait_for(running())
    proc.send_signal(signal.SIGKILL)
    run.end(proc)
    time.sleep(wait_s)
    relaunched = dt.datetime.now()
    run.launch()
    waited = f"relaunched {wait_s:g} s later" if wait_s else "relaunched at once"
    out = run.outcome(f"driver SIGKILL, {waited}", f"kill -9 the driver ({faults or 'defaults'})")
    out.recover_s = retries_start(run.trials(), relaunched)
    out.recover_what = "relaunch -> every stale trial's retry started"
    return out


def interrupted(work: Path, storage: str, sent: signal.Signals, delay_s: float) -> Outcome:
    run = Run(work, storage, 8 if delay_s else 60, slow_task(delay_s), QUICK)
    proc = run.start()
    run.wait_for(running())
    proc.send_signal(sent)
    run.end(proc)
    relaunched = dt.datetime.now()
    run.launch()
    epochs = "" if delay_s else ", short epochs"
    out = run.outcome(f"{sent.name}{epochs}", f"{sent.name} to the driver mid-trial, relaunch")
    out.recover_s = retries_start(run.trials(), relaunched)
    out.recover_what = "relaunch -> every interrupted trial's retry started"
    return out


def database_down(work: Path, down_s: float, patience_s: float) -> Outcome:
    with PrivatePostgres() as server:
        faults = f"{QUICK}, database_patience_s: {patience_s:g}"
        run = Run(work, server.url, 10, slow_task(0.04), faults)
        proc = run.start()
        run.wait_for(running())
        server.stop()
        time.sleep(down_s)
        server.start()
        back = dt.datetime.now()
        run.end(proc)
        kind = "waited out" if down_s < patience_s else "past its patience"
        if down_s >= patience_s:
            time.sleep(6)  # past stale_after_s: the stopped driver's trials are stale
            back = dt.datetime.now()
            run.launch()
        out = run.outcome(
            f"PostgreSQL down {down_s:g} s ({kind})",
            f"pg_ctl stop -m fast for {down_s:g} s, database_patience_s {patience_s:g}",
        )
        out.recover_s = first_start_after(run.trials(), back)
        out.recover_what = (
            "server back -> next trial started"
            if down_s < patience_s
            else "relaunch -> next trial started"
        )
        return out


def hang(work: Path, storage: str) -> Outcome:
    task = f"{{name: 'user_tasks:faulty', options: {{fault: hang, marker: '{work}/hung'}}}}"
    run = Run(work, storage, 6, task, "trial_timeout_s: 10")
    run.launch()
    out = run.outcome("a trial hangs", "one model sleeps an hour; trial_timeout_s 10")
    (hung,) = [t for t in run.trials() if t.state.name == "FAIL"] or [None]
    if hung is not None and hung.datetime_complete and hung.datetime_start:
        out.recover_s = round((hung.datetime_complete - hung.datetime_start).total_seconds(), 1)
    out.recover_what = "hung trial's start -> failed as timed out"
    return out


def exits(work: Path, storage: str) -> Outcome:
    task = "{name: 'user_tasks:faulty', options: {fault: exit, at: 2}}"
    run = Run(work, storage, 3, task, "max_retries: 3")
    run.launch()
    out = run.outcome("every task calls os._exit", "os._exit(3) mid-trial; max_retries 3")
    out.recover_what = "attempts per trial: 2 (not 4)"
    return out


def two_drivers(work: Path, storage: str, backend: str) -> Outcome:
    run = Run(work, storage, 10, slow_task(0.04), QUICK)
    procs = [run.start(), run.start()]
    for proc in procs:
        run.end(proc)
    return run.outcome(f"two drivers, {backend}", "two launches of one study at once")


def sqlite(work: Path) -> str:
    return f"sqlite:///{work}/study.db"


SCENARIOS: dict[str, Callable[[Path], Outcome]] = {
    "worker": lambda w: worker_sigkill(w, sqlite(w)),
    "raylet": lambda w: raylet_sigkill(w, sqlite(w)),
    "driver-now": lambda w: driver_sigkill(w, sqlite(w), "", 0),
    "driver-later": lambda w: driver_sigkill(w, sqlite(w), "", 61),
    "sigint": lambda w: interrupted(w, sqlite(w), signal.SIGINT, 0.04),
    "sigterm": lambda w: interrupted(w, sqlite(w), signal.SIGTERM, 0.04),
    "sigint-short": lambda w: interrupted(w, sqlite(w), signal.SIGINT, 0.0),
    "sigterm-short": lambda w: interrupted(w, sqlite(w), signal.SIGTERM, 0.0),
    "db-20s": lambda w: database_down(w, 20, 120),
    "db-past-patience": lambda w: database_down(w, 40, 15),
    "hang": lambda w: hang(w, sqlite(w)),
    "exit": lambda w: exits(w, sqlite(w)),
    "two-sqlite": lambda w: two_drivers(w, sqlite(w), "SQLite"),
    "two-postgres": lambda w: _two_on_postgres(w),
}


def _two_on_postgres(work: Path) -> Outcome:
    with PrivatePostgres() as server:
        return two_drivers(work, server.url, "PostgreSQL")


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | budget | trials by state | retries | over budget | repeats | "
        "recovery | exit codes | tracebacks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        states = ", ".join(f"{k} {v}" for k, v in sorted(o.states.items()))
        recover = "" if o.recover_s is None else f"{o.recover_s:g} s: "
        lines.append(
            f"| {o.scenario} | {o.budget} | {states} | {o.retries} | {o.over_budget} | "
            f"{o.repeats} | {recover}{o.recover_what} | {o.exit_codes} | {o.tracebacks} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/faults.json")
    args = parser.parse_args()
    names = args.only or list(SCENARIOS)
    print(
        f"bench/faults.py: {platform.machine()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, {dt.date.today()}",
        flush=True,
    )
    outcomes = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"faults-{name}-") as work:
            began = time.perf_counter()
            outcome = SCENARIOS[name](Path(work))
            outcomes.append(outcome)
            states = dict(sorted(outcome.states.items()))
            print(
                f"  {name}: {states}, retries {outcome.retries}, over budget "
                f"{outcome.over_budget}, repeats {outcome.repeats}, recovery "
                f"{outcome.recover_s} s ({outcome.recover_what}), exits {outcome.exit_codes}, "
                f"tracebacks {outcome.tracebacks} [{time.perf_counter() - began:.0f} s]",
                flush=True,
            )
    print(table(outcomes))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1) + "\n")
    left = sum(o.states.get("RUNNING", 0) + o.states.get("WAITING", 0) for o in outcomes)
    print(
        f"trials left RUNNING or WAITING: {left}; tracebacks: {sum(o.tracebacks for o in outcomes)}"
    )


if __name__ == "__main__":
    main()
