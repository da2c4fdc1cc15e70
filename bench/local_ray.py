"""A private local Ray for a benchmark, its workers able to import bench/'s task modules."""

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
