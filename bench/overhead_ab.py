"""Per-trial overhead of two checkouts of groupwise, side by side in one run: this tree and an
earlier commit (a git worktree), alternated round by round so both see the same machine.

    python bench/overhead_ab.py --base REF [--rounds 5] [--trials 100]

Each round runs, for each tree in turn, a fresh process that imports groupwise from that tree
(PYTHONPATH=<tree>/src) and launches the same study: the trivial task (one ~2 ms step per
trial), 2 Ray workers, SQLite, TPE, ``--trials`` trials. Reported per tree: the median over
rounds of ms per trial over the whole launch, and of the steady state (first trial's start to
last trial's end, from the trials' own timestamps), and the ratio this tree / base.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def child(trials: int) -> None:
    """One launch, in this process, with whichever groupwise PYTHONPATH gives; prints JSON."""
    sys.path.insert(0, str(HERE))
    import optuna

    import local_ray
    from groupwise.execution import launch

    try:
        from groupwise.studyfiles import read_study
    except ImportError:  # before the stage was renamed
        from groupwise.spec import read_study  # type: ignore[no-redef]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    local_ray.start(num_cpus=2)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        training = "{epochs: 1, steps_per_epoch: 30, batch_size: 64}"
        path = local_ray.study_file(
            directory, "gw", task="trivial:trivial", trials=trials, training=training
        )
        storage = f"sqlite:///{directory}/gw.db"
        start = time.perf_counter()
        launch(read_study(path), storage=storage)
        total = (time.perf_counter() - start) / trials
        done = optuna.load_study(study_name="gw", storage=storage).get_trials()
        first = min(t.datetime_start for t in done if t.datetime_start)
        last = max(t.datetime_complete for t in done if t.datetime_complete)
        steady = (last - first).total_seconds() / len(done)
    print(json.dumps({"total": total, "steady": steady}))


def measure(tree: Path, trials: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), str(HERE)])}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", "--trials", str(trials)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.trials)
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            runs: dict[str, list[dict[str, float]]] = {"base": [], "this tree": []}
            for round_ in range(args.rounds):
                for label, tree in (("base", base), ("this tree", ROOT)):
                    runs[label].append(measure(tree, args.trials))
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", args.base], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(f"per-trial overhead, trivial task, {args.trials} trials x {args.rounds} rounds")
    print(f"{'tree':<22} {'ms/trial':>9} {'steady ms':>10}")
    medians = {}
    for label, rows in runs.items():
        total = statistics.median(r["total"] for r in rows) * 1e3
        steady = statistics.median(r["steady"] for r in rows) * 1e3
        medians[label] = (total, steady)
        name = f"base ({commit})" if label == "base" else label
        print(f"{name:<22} {total:9.1f} {steady:10.1f}")
    (bt, bs), (tt, ts) = medians["base"], medians["this tree"]
    print(f"ratio this tree / base: {tt / bt:.3f} (whole launch), {ts / bs:.3f} (steady state)")


if __name__ == "__main__":
    main()
