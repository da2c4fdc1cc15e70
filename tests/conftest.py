from __future__ import annotations

import pytest
import torch

import zoo


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def my_model():
    return zoo.MyModel()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster for every test that launches a study in-process."""
    import os
    from pathlib import Path

    import ray

    here = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield ray
    ray.shutdown()
