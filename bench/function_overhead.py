"""Per-trial overhead of a function task, side by side in one run (issue 25).

    python bench/function_overhead.py [--trials 20] [--epochs 3] [--steps 40]
    python bench/function_overhead.py --profile [--rounds 2] [--task digits_mlp] ...

``--profile`` says where a function task's extra time goes: the same trial trained in this
process by the built-in loop (``Trainer``) and as a function (``FunctionRun``), alternating,
then groupwise's two runs alone, alternating ``--rounds`` times, each with its steady state
and its worker replies (round trips) per trial.

Every system trains the same model on the same data for the same steps: a built-in task
(``--task``, default ``char_rnn``: about a second a trial), AdamW at a sampled lr, ``epochs x
steps`` steps of 64 samples (at most one pass over the data an epoch), the validation loss
after each epoch. What differs is who runs the loop:

- groupwise, built-in task: the study's loop (``task: char_rnn``)
- groupwise, function task: the user's loop (``task: {train: "function_tasks:builtin"}``,
  :func:`function_tasks.builtin`), reporting each epoch through ``trial.report``
- Ray Tune, function trainable: the same loop with ``tune.report`` each epoch (2 concurrent)
- plain Optuna: the same loop as an objective with ``trial.report`` (``n_jobs=2``, in-process)

groupwise's two runs use the same study file but the task (2 workers, random sampler, no
pruner). Reported: seconds per trial over the whole run, and for groupwise the steady state
(first trial start to last trial end, from the trials' own timestamps). Needs ``ray[tune]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import function_tasks  # noqa: E402
import local_ray  # noqa: E402
from groupwise.execution import launch  # noqa: E402
from groupwise.studyfiles import read_study  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")

SPACE = """
schemes: [single]
optimizers:
  adamw: {lr: {low: 1.0e-4, high: 3.0e-2, log: true}}
"""


def study(directory: Path, name: str, task: str, args: argparse.Namespace) -> Path:
    (directory / "space.yaml").write_text(SPACE)
    path = directory / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ntask: {task}\nsearch_space: space.yaml\n"
        f"budget: {{trials: {args.trials}}}\n"
        f"training: {{epochs: {args.epochs}, steps_per_epoch: {args.steps}, batch_size: 64}}\n"
        "sampler: {name: random}\npruner: none\nworkers: {count: 2, cpus_per_trial: 1}\n"
        "seed: 0\n"
    )
    return path


def steady_state(storage: str, name: str) -> float:
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    start = min(t.datetime_start for t in trials if t.datetime_start)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    return (end - start).total_seconds() / len(trials)


def run_groupwise(
    directory: Path, name: str, task: str, args: argparse.Namespace
) -> tuple[float, float]:
    storage = f"sqlite:///{directory}/{name}.db"
    spec = read_study(study(directory, name, task, args))
    start = time.perf_counter()
    launch(spec, storage=storage)
    return (time.perf_counter() - start) / args.trials, steady_state(storage, name)


def run_tune(directory: Path, args: argparse.Namespace) -> float:
    from ray import tune

    epochs, steps, name = args.epochs, args.steps, args.task

    def trainable(params: dict[str, float]) -> None:
        torch.set_num_threads(1)
        for _, val in function_tasks.loop(params["lr"], epochs, steps, 0, name):
            tune.report({"val_loss": val})

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"lr": tune.loguniform(1e-4, 3e-2)},
        tune_config=tune.TuneConfig(num_samples=args.trials, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(directory / "tune"), verbose=0),
    )
    start = time.perf_counter()
    tuner.fit()
    return (time.perf_counter() - start) / args.trials


def run_optuna(directory: Path, args: argparse.Namespace) -> float:
    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        val = float("nan")
        for epoch, val in function_tasks.loop(lr, args.epochs, args.steps, 0, args.task):
            trial.report(val, epoch)
        return val

    url = f"sqlite:///{directory}/optuna.db"
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(storage=url, sampler=sampler, study_name="optuna")
    start = time.perf_counter()
    study.optimize(objective, n_trials=args.trials, n_jobs=2)
    return (time.perf_counter() - start) / args.trials


def in_process(args: argparse.Namespace, trials: int = 30) -> dict[str, float]:
    """Seconds per trial of the built-in loop and of the function, here, without Ray."""
    from groupwise.config import GroupConfig, SchemeChoice, TrialConfig
    from groupwise.training import FunctionRun, Returned, Trainer, TrainingOptions

    torch.set_num_threads(1)
    config = TrialConfig(SchemeChoice("single"), {"all": GroupConfig("adamw", {"lr": 1e-3})})
    task = function_tasks.task(args.task)
    options = TrainingOptions(batch_size=64, steps_per_epoch=args.steps)
    cpu = torch.device("cpu")
    function_options = {"epochs": args.epochs, "steps": args.steps, "task": args.task}

    def builtin() -> None:
        trainer = Trainer(task, config, seed=0, device=cpu, options=options)
        for _ in range(args.epochs):
            trainer.run_epoch()

    def function() -> None:
        run = FunctionRun(
            function_tasks.builtin, config, seed=0, device=cpu, options=function_options
        )
        while not isinstance(run.next(), Returned):
            pass

    seconds: dict[str, float] = {}
    for train in (builtin, function, builtin, function):
        train()  # warm
        start = time.perf_counter()
        for _ in range(trials):
            train()
        seconds[train.__name__] = seconds.get(train.__name__, 0.0) + (
            time.perf_counter() - start
        ) / (2 * trials)
    return seconds


def profile(args: argparse.Namespace) -> None:
    from groupwise.execution._pool import WorkerPool

    local = in_process(args)
    print(
        f"  in one process: built-in {local['builtin'] * 1e3:.1f} ms/trial, function "
        f"{local['function'] * 1e3:.1f} ms/trial"
    )
    replies = [0]
    wait_raw = WorkerPool.wait_raw

    def counted(self: WorkerPool, timeout_s: float) -> Any:
        got = wait_raw(self, timeout_s)
        replies[0] += got is not None
        return got

    WorkerPool.wait_raw = counted  # type: ignore[method-assign]
    options = f"{{epochs: {args.epochs}, steps: {args.steps}, task: {args.task}}}"
    tasks = {
        "built-in": args.task,
        "function": f"{{train: 'function_tasks:builtin', options: {options}}}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for label, task in tasks.items():
                replies[0] = 0
                name = f"{label.replace('-', '')}{r}"
                _, steady = run_groupwise(Path(tmp), name, task, args)
                print(
                    f"  round {r} {label:<8}: steady {steady:.3f} s/trial, "
                    f"{replies[0] / args.trials:.2f} worker replies a trial"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--task", default="char_rnn", help="the built-in task both loops train")
    parser.add_argument("--profile", action="store_true", help="where the function's time goes")
    parser.add_argument("--rounds", type=int, default=2, help="--profile: runs of each")
    args = parser.parse_args()
    print(
        f"bench/function_overhead.py: {platform.machine()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, torch {torch.__version__}; {args.trials} trials x "
        f"{args.epochs} epochs x {args.steps} steps of {args.task}"
    )
    local_ray.start()
    os.environ["GROUPWISE_TASK_PATH"] = str(HERE)
    if args.profile:
        profile(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        builtin = run_groupwise(directory, "builtin", args.task, args)
        print(f"  groupwise, built-in task: {builtin[0]:.3f} s/trial (steady {builtin[1]:.3f})")
        options = f"{{epochs: {args.epochs}, steps: {args.steps}, task: {args.task}}}"
        task = f"{{train: 'function_tasks:builtin', options: {options}}}"
        function = run_groupwise(directory, "function", task, args)
        print(f"  groupwise, function task: {function[0]:.3f} s/trial (steady {function[1]:.3f})")
        tuned = run_tune(directory, args)
        print(f"  Ray Tune, function trainable: {tuned:.3f} s/trial")
        plain = run_optuna(directory, args)
        print(f"  plain Optuna objective (n_jobs=2): {plain:.3f} s/trial")
    print(
        f"\nfunction task / built-in task: {function[0] / builtin[0]:.3f} (whole run), "
        f"{function[1] / builtin[1]:.3f} (steady state)\n"
        f"Ray Tune / function task: {tuned / function[0]:.3f}\n"
        f"plain Optuna / function task: {plain / function[0]:.3f}"
    )


if __name__ == "__main__":
    main()
