"""``launch``: a plan, a database and a Ray cluster -> a study run to its budget.

Order matters for bad input: the plan is checked first (no database, no Ray), then the
cluster is asked for the workers (it can refuse them) before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from groupwise.config import TrialConfig
from groupwise.execution._driver import DRIVER, Driver, Progress
from groupwise.execution._pool import WorkerPool
from groupwise.execution._protocol import WorkerSettings
from groupwise.plan import Plan, make_plan
from groupwise.spec import StudySpec
from groupwise.store import Ledger, StudyIdentity, resolve_url

__all__ = ["LaunchResult", "launch"]


@dataclass(frozen=True)
class LaunchResult:
    study: str
    storage: str
    progress: Progress
    best_config: TrialConfig | None
    ran: int  # trials finished by this launch


def launch(
    study: StudySpec | Plan,
    *,
    storage: str | None = None,
    ray_address: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> LaunchResult:
    """Run (or continue) a study until its budget of finished trials or its time is spent."""
    plan = study if isinstance(study, Plan) else make_plan(study)  # every check, no writes
    spec, url = plan.spec, resolve_url(storage)
    pool = _pool(spec, ray_address)
    driver: Driver | None = None
    try:
        pool.start()  # the cluster can refuse the workers: before any write
        ledger = _ledger(plan, url)
        driver = Driver(plan, ledger, pool, on_progress, _memory_budget(spec, pool))
        driver.run()
    except BaseException:
        if driver is not None:
            driver.stop("interrupted: the driver stopped while the trial ran")
        raise
    finally:
        pool.close()
    return LaunchResult(spec.name, url, driver.progress(), driver.best_config(), driver.ran)


def _pool(spec: StudySpec, ray_address: str | None) -> WorkerPool:
    w, t = spec.workers, spec.training
    settings = WorkerSettings(
        task=spec.task.name,
        task_options=dict(spec.task.options),
        seed=spec.seed,
        batch_size=t.batch_size,
        steps_per_epoch=t.steps_per_epoch,
        cpus=w.cpus_per_trial,
    )
    return WorkerPool(
        settings,
        count=w.count,
        cpus=w.cpus_per_trial,
        gpus=w.gpus_per_trial,
        ray_address=ray_address,
    )


def _ledger(plan: Plan, url: str) -> Ledger:
    spec = plan.spec
    identity = StudyIdentity(
        name=spec.name,
        direction=spec.objective.direction,
        fingerprint=plan.fingerprint,
        metric=spec.objective.metric,
        task=spec.task.name,
        search_space=str(spec.search_space),
    )
    return Ledger.open(
        url,
        identity,
        sampler=plan.sampler.build(),
        pruner=plan.pruner.build(),
        heartbeat=(spec.faults.heartbeat_s, spec.faults.stale_after_s),
        max_retries=spec.faults.max_retries,
        driver=DRIVER,
    )


def _memory_budget(spec: StudySpec, pool: WorkerPool) -> int | None:
    """Bytes a trial may use: the study's setting, else on GPUs its share of the smallest."""
    w = spec.workers
    if w.memory_per_trial_mb is not None:
        return int(w.memory_per_trial_mb * 2**20)
    if w.gpus_per_trial <= 0:
        return None
    pool.wait_started()
    sizes = pool.device_memory()
    if not sizes or not all(sizes):
        return None
    return int(min(s for s in sizes if s) * min(1.0, w.gpus_per_trial))
