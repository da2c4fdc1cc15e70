"""Per-trial overhead of the search machinery, side by side in one run.

    python bench/overhead.py [--trials 100] [--tune-trials 30] [--profile]

Every system samples the same define-by-run space (groupwise's own sampling of
search_spaces/seeds_mixed.yaml over the digits CNN) with the same pinned TPE sampler, and
runs the same near-trivial objective: build the config's optimizer on a one-sample task and
take one step (about 2 ms). What differs is only the orchestration:

- groupwise: driver + 2 Ray worker actors + SQLite (every trial durable, with its config)
- plain Optuna: study.optimize on the same SQLite file, n_jobs 1 and 2
- Ray Tune + OptunaSearch, 2 concurrent trials, defaults and reuse_actors=True
  (Tune's OptunaSearch keeps its study in memory: nothing is durable in SQL)

Reported: seconds per trial over the whole run, and steady state (first trial start to last
trial end, from the trials' own timestamps) where the system records them. Then throughput
of CPU-bound trials (char_rnn, real training, about 1.5 s each) with 1 and 2 workers; with
--profile, where the driver's time per trial goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import ray
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import local_ray  # noqa: E402
from groupwise.config import TrialConfig  # noqa: E402
from groupwise.execution import launch  # noqa: E402
from groupwise.plan import component, make_plan  # noqa: E402
from groupwise.sampling import sample  # noqa: E402
from groupwise.store import open_storage  # noqa: E402
from groupwise.studyfiles import read_study  # noqa: E402
from groupwise.tasks import resolve_task  # noqa: E402
from groupwise.training import Trainer  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")


def study_file(
    directory: Path, name: str, task: str, trials: int, workers: int, epochs: int
) -> Path:
    training = f"{{epochs: {epochs}, steps_per_epoch: 30, batch_size: 64}}"
    return local_ray.study_file(
        directory, name, task=task, trials=trials, training=training, workers=workers
    )


def steady_state(storage: str, name: str) -> float:
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    start = min(t.datetime_start for t in trials if t.datetime_start)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    return (end - start).total_seconds() / len(trials)


def run_groupwise(directory: Path, trials: int) -> tuple[float, float]:
    storage = f"sqlite:///{directory}/groupwise.db"
    spec = read_study(study_file(directory, "gw", "trivial:trivial", trials, 2, 1))
    start = time.perf_counter()
    launch(spec, storage=storage)
    return (time.perf_counter() - start) / trials, steady_state(storage, "gw")


def tpe():
    return component("sampler", "tpe", {}, "bench", seed=0).build()


def one_epoch(task, config: TrialConfig) -> float:  # the same work a groupwise worker does
    return Trainer(task, config, batch_size=64).run_epoch().metrics["val_loss"]


def trivial_objective(plan):
    task = resolve_task("trivial:trivial", seed=0)

    def objective(trial: optuna.Trial) -> float:
        config = sample(trial, plan.spec.space, plan.facts)
        trial.set_user_attr("groupwise.config", config.to_json())
        return one_epoch(task, config)

    return objective


def run_optuna(
    directory: Path, trials: int, n_jobs: int, same_storage: bool = True
) -> tuple[float, float]:
    """Plain Optuna; ``same_storage`` opens SQLite as groupwise does (WAL), else Optuna's default."""
    plan = make_plan(read_study(study_file(directory, "gw", "trivial:trivial", trials, 2, 1)))
    name = f"o{n_jobs}{'w' if same_storage else 'd'}"
    url = f"sqlite:///{directory}/{name}.db"
    storage = open_storage(url, create=True) if same_storage else url
    study = optuna.create_study(storage=storage, sampler=tpe(), study_name=name)
    start = time.perf_counter()
    study.optimize(trivial_objective(plan), n_trials=trials, n_jobs=n_jobs)
    return (time.perf_counter() - start) / trials, steady_state(url, name)


class TuneSpace:
    """Tune pickles its define-by-run space, so it is a module-level object, not a closure."""

    def __init__(self, space: object, facts: object) -> None:
        self.space, self.facts = space, facts

    def __call__(self, trial: optuna.Trial) -> dict[str, str]:
        return {"config": sample(trial, self.space, self.facts).to_json()}  # type: ignore[arg-type]


def run_tune(directory: Path, trials: int, reuse_actors: bool) -> float:
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    plan = make_plan(read_study(study_file(directory, "gw", "trivial:trivial", trials, 2, 1)))
    space = TuneSpace(plan.spec.space, plan.facts)

    def trainable(params: dict[str, str]) -> None:
        task = resolve_task("trivial:trivial", seed=0)
        tune.report({"loss": one_epoch(task, TrialConfig.from_json(params["config"]))})

    searcher = OptunaSearch(space, metric="loss", mode="min", sampler=tpe())
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=trials,
            max_concurrent_trials=2,
            reuse_actors=reuse_actors,
        ),
        run_config=tune.RunConfig(storage_path=str(directory / "tune"), verbose=0),
    )
    start = time.perf_counter()
    tuner.fit()
    return (time.perf_counter() - start) / trials


def throughput(directory: Path, workers: int, trials: int) -> float:
    storage = f"sqlite:///{directory}/scale{workers}.db"
    spec = read_study(study_file(directory, f"scale{workers}", "char_rnn", trials, workers, 3))
    launch(spec, storage=storage)
    return 60.0 / steady_state(storage, f"scale{workers}")


def profile_driver(directory: Path, trials: int) -> None:
    storage = f"sqlite:///{directory}/profile.db"
    spec = read_study(study_file(directory, "prof", "trivial:trivial", trials, 2, 1))
    profiler = cProfile.Profile()
    profiler.enable()
    launch(spec, storage=storage)
    profiler.disable()
    stats = pstats.Stats(profiler)
    wanted = {  # (function, file fragment) -> label
        ("open_trial", "_ledger"): "open a trial (one transaction)",
        ("sample", "sampling"): "  of it: sampling (TPE reads memory)",
        ("ask", "study"): "  of it: study.ask",
        ("write_pending", "_mirror"): "  of it: the trial written whole (one session)",
        ("start_run", "_records"): "  of it: its run and group rows",
        ("record_epoch", "_ledger"): "record an epoch, and end the trial on its last",
        ("should_prune", "_ledger"): "  of it: should_prune",
        ("close", "_ledger"): "close a failed trial (one transaction)",
        ("wait", "_pool"): "waiting on workers (ray.wait: worker time + RPC)",
        ("tally", "_ledger"): "counting trials (memory, cached)",
        ("_tick", "_driver"): "per-heartbeat tick",
        ("run", "_driver"): "driver loop, total",
    }
    rows = {}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for (name, fragment), label in wanted.items():
            if function == name and fragment in filename:
                rows[label] = max(rows.get(label, 0.0), cumulative)
    print(f"\ndriver profile, {trials} trivial trials (cumulative ms per trial; calls nest):")
    for label in wanted.values():
        if label in rows:
            print(f"  {label:<50} {rows[label] / trials * 1e3:7.2f}")


def storage_costs(trials: int) -> None:
    """ask + sample + tell alone (no objective) per sampler and storage: what SQL costs the sampler."""
    plan = make_plan(
        read_study(study_file(Path(tempfile.mkdtemp()), "gw", "trivial:trivial", trials, 2, 1))
    )
    print(f"\nask + sample + tell, no objective, {trials} trials (ms/trial):")
    with tempfile.TemporaryDirectory() as tmp:
        for sampler_name in ("random", "tpe"):
            for label in (
                "in memory",
                "SQLite, Optuna's default",
                "SQLite as groupwise opens it (WAL)",
            ):
                url = f"sqlite:///{tmp}/{sampler_name}{len(label)}.db"
                storage = (
                    None
                    if label == "in memory"
                    else (url if "default" in label else open_storage(url, create=True))
                )
                sampler = component("sampler", sampler_name, {}, "bench", seed=0).build()
                study = optuna.create_study(storage=storage, sampler=sampler)
                start = time.perf_counter()
                for i in range(trials):
                    trial = study.ask()
                    sample(trial, plan.spec.space, plan.facts)
                    study.tell(trial, (i * 0.37) % 1.0)
                print(
                    f"  {sampler_name:<7} {label:<36} {(time.perf_counter() - start) / trials * 1e3:7.1f}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--tune-trials", type=int, default=30)
    parser.add_argument("--scale-trials", type=int, default=24)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-tune", action="store_true")
    parser.add_argument(
        "--storage-only", action="store_true", help="only the sampler/storage table"
    )
    args = parser.parse_args()
    if args.storage_only:
        storage_costs(60)
        return
    print(
        f"torch {torch.__version__}, optuna {optuna.__version__}, ray {ray.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    local_ray.start(num_cpus=2)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        results: dict[str, tuple[float, float | None]] = {}
        results["groupwise (driver + 2 Ray workers + SQLite)"] = run_groupwise(
            directory, args.trials
        )
        results["plain Optuna, same SQLite (WAL), n_jobs=1"] = run_optuna(directory, args.trials, 1)
        results["plain Optuna, same SQLite (WAL), n_jobs=2"] = run_optuna(directory, args.trials, 2)
        results["plain Optuna, default SQLite, n_jobs=1"] = run_optuna(
            directory, args.trials, 1, False
        )
        if not args.skip_tune:
            results["Ray Tune + OptunaSearch, defaults"] = (
                run_tune(directory, args.tune_trials, False),
                None,
            )
            results["Ray Tune + OptunaSearch, reuse_actors"] = (
                run_tune(directory, args.trials, True),
                None,
            )
        base = results["plain Optuna, same SQLite (WAL), n_jobs=1"][0]
        ours = results["groupwise (driver + 2 Ray workers + SQLite)"][0]
        print(
            f"\nper-trial time, trivial objective ({args.trials} trials; Tune defaults {args.tune_trials})"
        )
        print(
            f"{'system':<46} {'ms/trial':>9} {'steady':>8} {'vs optuna':>10} {'vs groupwise':>13}"
        )
        for name, (total, steady) in results.items():
            steady_text = f"{steady * 1e3:8.1f}" if steady is not None else f"{'-':>8}"
            print(
                f"{name:<46} {total * 1e3:9.1f} {steady_text} {total / base:10.2f} {total / ours:13.2f}"
            )

        one, two = (
            throughput(directory, 1, args.scale_trials),
            throughput(directory, 2, args.scale_trials),
        )
        print(
            f"\nCPU-bound trials (char_rnn, 3 epochs x 30 steps), steady state: 1 worker {one:.1f} trials/min, "
            f"2 workers {two:.1f} trials/min, speed-up {two / one:.2f}x"
        )
        if args.profile:
            profile_driver(directory, args.trials)
    ray.shutdown()


if __name__ == "__main__":
    main()
