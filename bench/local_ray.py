"""What the benchmarks share: a private local Ray whose workers can import bench/'s task
modules, and writing study files."""

from __future__ import annotations

import os
from pathlib import Path

import ray


def start(num_cpus: int = 2) -> None:
    # address="local": never a cluster some `ray start` left recorded on this machine
    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    os.environ["PYTHONPATH"] = path
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )


SEEDS_MIXED = Path(__file__).resolve().parent.parent / "search_spaces" / "seeds_mixed.yaml"


def study_file(
    directory: Path,
    name: str,
    *,
    task: str,
    trials: int,
    training: str,
    space: Path = SEEDS_MIXED,
    sampler: str = "{name: tpe}",
    pruner: str = "none",
    workers: int = 2,
    seed: int = 0,
    file: str | None = None,
) -> Path:
    """Write a study file (``file``.yaml, default ``name``.yaml) into ``directory``."""
    path = directory / f"{file or name}.yaml"
    path.write_text(
        f"name: {name}\ntask: {task}\nsearch_space: {space}\nbudget: {{trials: {trials}}}\n"
        f"training: {training}\nsampler: {sampler}\npruner: {pruner}\n"
        f"workers: {{count: {workers}, cpus_per_trial: 1}}\nseed: {seed}\n"
    )
    return path
