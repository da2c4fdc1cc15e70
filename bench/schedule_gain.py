"""Does per-group search gain more or less under warmup + cosine than at a constant lr?

    python bench/schedule_gain.py --constant A.json [B.json ...] --cosine C.json [D.json ...]

Reads ``bench/search_quality.py`` results (its JSON rows) of two runs that differ only in the
schedule every trial trains with, and prints per task, for each schedule: the tuned single
optimizer's best and per_group.yaml's (staged, as shipped) best, mean over seeds, and the
per-group gain (per-group - baseline, paired by seed, with its standard error; negative is
better) on the seeds both runs have. Both are the studies' own bests, the number each run's
"never worse" table has always compared; what the exported configs give on fresh seeds is in
``search_quality.py``'s own summary of the cosine run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import BASELINE, LEGACY, STAGED, paired


def bests(paths: list[Path]) -> dict[tuple[str, str, int], float]:
    """(task, method, seed) -> the study's best, over every file (later files win)."""
    out: dict[tuple[str, str, int], float] = {}
    for path in paths:
        for row in json.loads(path.read_text()):
            method = LEGACY.get(row["method"], row["method"])
            out[(row["task"], method, row["seed"])] = row["best"]
    return out


def gains(table: dict[tuple[str, str, int], float], task: str, seeds: list[int]) -> list[float]:
    return [table[(task, STAGED, s)] - table[(task, BASELINE, s)] for s in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--constant", type=Path, nargs="+", required=True)
    parser.add_argument("--cosine", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    constant, cosine = bests(args.constant), bests(args.cosine)
    tasks = sorted({task for task, _, _ in cosine}, key=lambda t: (":" in t, t))
    print(
        f"{'task':<32} {'seeds':>5} {'schedule':>9} {'baseline':>9} {'per-group':>9} "
        f"{'gain (s.e.)':>18} {'seeds better':>13}"
    )
    for task in tasks:
        seeds = sorted(
            s
            for (t, m, s) in cosine
            if t == task
            and m == BASELINE
            and all(k in table for table in (constant, cosine) for k in _keys(task, s))
        )
        if not seeds:
            continue
        for label, table in (("constant", constant), ("cosine", cosine)):
            diffs = gains(table, task, seeds)
            base = statistics.mean(table[(task, BASELINE, s)] for s in seeds)
            mine = statistics.mean(table[(task, STAGED, s)] for s in seeds)
            print(
                f"{task:<32} {len(seeds):>5} {label:>9} {base:>9.4f} {mine:>9.4f} "
                f"{paired(diffs):>18} {sum(d < 0 for d in diffs):>9}/{len(seeds)}"
            )


def _keys(task: str, seed: int) -> list[tuple[str, str, int]]:
    return [(task, BASELINE, seed), (task, STAGED, seed)]


if __name__ == "__main__":
    main()
