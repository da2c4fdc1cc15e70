"""Confirmation on top of the search (issue 24, restated): the same searches with and without
``confirm: {top: 3, seeds: 2}`` *added* to the budget (20 searched trials, then 6
confirmations), from two runs of ``bench/search_quality.py`` on the same seeds:

    .venv/bin/python bench/confirm_on_top.py \\
      --without bench/results/search_quality_cosine_seen_s*.json \\
      --with bench/results/search_quality_cosine_confirm_extra_s*.json

Per task: the optimism gap (fresh-seed mean of the export - what the study reported) without
and with, its mean absolute value, the export's fresh-seed mean without and with (paired by
seed), and each search's own best (without confirmation it is what the study reports). With
reproducible rounds the first 20 trials of both are the same trials where the code between the
two runs trains identically; this says where they are not (the largest relative difference)."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

STAGED = "per_group.yaml, staged: the base first (the default)"
CONFIRMED = "per_group.yaml, staged, confirm top 3 x 2 seeds"


def rows(paths: list[Path], method: str) -> dict[tuple[str, int], dict]:
    found = {}
    for path in paths:
        for row in json.loads(path.read_text()):
            if row["method"] == method:
                found[(row["task"], row["seed"])] = row
    return found


def paired(diffs: list[float]) -> str:
    if len(diffs) < 2:
        return f"{statistics.mean(diffs):+.4f}"
    error = statistics.stdev(diffs) / len(diffs) ** 0.5
    return f"{statistics.mean(diffs):+.4f} ({error:.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--without", type=Path, nargs="+", required=True)
    parser.add_argument("--with", dest="with_", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    without, with_ = rows(args.without, STAGED), rows(args.with_, CONFIRMED)
    keys = sorted(set(without) & set(with_), key=lambda k: (k[0], k[1]))
    tasks = list(dict.fromkeys(task for task, _ in keys))
    print(
        "| task | seeds | gap without (s.e.) | gap with (s.e.) | mean abs gap without -> with "
        "| fresh without | fresh with | with - without (s.e.) | search best without, with |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    all_abs: dict[str, list[float]] = {"without": [], "with": []}
    for task in tasks:
        mine = [(without[k], with_[k]) for k in keys if k[0] == task]
        for a, b in mine:
            n = len(a["curve"])
            drift = max(
                abs(x - y) / abs(x) for x, y in zip(a["curve"], b["curve"][:n], strict=True)
            )
            if drift:
                print(
                    f"  note: {task} seed {a['seed']}: first {n} trials' best differ by {drift:.1e}"
                )
        fresh_a = [statistics.mean(a["fresh"]) for a, _ in mine]
        fresh_b = [statistics.mean(b["fresh"]) for _, b in mine]
        gap_a = [f - a["reported"] for f, (a, _) in zip(fresh_a, mine, strict=True)]
        gap_b = [f - b["reported"] for f, (_, b) in zip(fresh_b, mine, strict=True)]
        all_abs["without"] += [abs(g) for g in gap_a]
        all_abs["with"] += [abs(g) for g in gap_b]
        bests = (
            statistics.mean(a["best"] for a, _ in mine),
            statistics.mean(b["best"] for _, b in mine),
        )
        print(
            f"| {task} | {len(mine)} | {paired(gap_a)} | {paired(gap_b)} | "
            f"{statistics.mean(abs(g) for g in gap_a):.4f} -> "
            f"{statistics.mean(abs(g) for g in gap_b):.4f} | {statistics.mean(fresh_a):.4f} | "
            f"{statistics.mean(fresh_b):.4f} | "
            f"{paired([b - a for a, b in zip(fresh_a, fresh_b, strict=True)])} | "
            f"{bests[0]:.4f}, {bests[1]:.4f} |"
        )
    print(
        f"\nmean absolute gap over every task and seed: {statistics.mean(all_abs['without']):.4f}"
        f" without, {statistics.mean(all_abs['with']):.4f} with"
    )


if __name__ == "__main__":
    main()
