"""``launch``: a plan, a database and a Ray cluster -> a study run to its budget.

Order matters. The plan is checked first (no database, no Ray); then the study database is
read, not written, so a study launched before with another file, or one already at its
budget, is answered at once; then the cluster is asked for the workers (it can refuse them)
before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from groupwise import _interrupts as interrupts
from groupwise.config import TrialConfig
from groupwise.errors import StudyError
from groupwise.execution._driver import DRIVER, Driver
from groupwise.execution._progress import Progress
from groupwise.execution._protocol import WorkerSettings
from groupwise.plan import Plan, identity, make_plan
from groupwise.spec import StudySpec
from groupwise.store import CONFIG_ATTR, Ledger, StudyIdentity, Tally, open_study, resolve_url

if TYPE_CHECKING:  # the pool brings Ray: imported only once the study needs workers
    from groupwise.execution._pool import WorkerPool

__all__ = ["LaunchResult", "check_launch", "launch"]

log = logging.getLogger("groupwise")


@dataclass(frozen=True)
class LaunchResult:
    study: str
    storage: str
    progress: Progress
    best_config: TrialConfig | None
    ran: int  # trials finished by this launch (replays of a finished config not counted)
    note: str = ""  # why it stopped, when that is not its budget


def launch(
    study: StudySpec | Plan,
    *,
    storage: str | None = None,
    ray_address: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> LaunchResult:
    """Run (or continue) a study until its budget of finished trials or its time is spent."""
    plan = study if isinstance(study, Plan) else make_plan(study)  # every check, no writes
    spec, url, who = plan.spec, resolve_url(storage), _identity(plan)
    known = check_launch(plan, url)
    if known is not None and _finished(spec, known):
        return _already_finished(plan, url, known)
    pool = _pool(spec, ray_address)
    try:
        pool.start()  # the cluster can refuse the workers: before any write
        with interrupts.deferring():  # set after Ray's start-up, whose SIGTERM handler aborts
            driver = _drive(plan, url, who, pool, on_progress)
    finally:
        pool.close()
    progress = driver.progress()
    return LaunchResult(spec.name, url, progress, driver.best_config(), driver.ran, driver.note)


def check_launch(plan: Plan, storage: str | None = None) -> Tally | None:
    """What a launch checks in the database before Ray, read-only: an existing study of
    this name must be this study (else StudyError naming what changed), and every warm-start
    study must be one it can start from. Returns the study's counts, None if it is new."""
    url, who = resolve_url(storage), _identity(plan)
    known = Ledger.check(url, who)
    for source in plan.spec.warm_start.studies:
        Ledger.check_source(url, who, source)
    return known


def _drive(
    plan: Plan,
    url: str,
    who: StudyIdentity,
    pool: WorkerPool,
    on_progress: Callable[[Progress], None] | None,
) -> Driver:
    """Record the study and its seeds, then run the driver to the end. Ctrl-C and SIGTERM
    land only at its safe points; the trials running then are recorded as interrupted."""
    ledger = _ledger(plan, url, who)
    for source in plan.spec.warm_start.studies:
        ledger.seed_from(source)
    ledger.enqueue([(seed.recipe, seed.params) for seed in plan.seeds if not seed.follows])
    driver = Driver(plan, ledger, pool, on_progress, _memory_budget(plan.spec, pool))
    try:
        driver.run()
    except BaseException:
        _stop(driver)
        raise
    return driver


def _stop(driver: Driver) -> None:
    """Record the running trials as interrupted (retried next launch), best effort: with the
    database gone, they stay RUNNING and the next launch fails them as stale instead."""
    try:
        driver.stop("interrupted: the driver stopped while the trial ran")
    except StudyError as e:
        log.warning("could not record the running trials as interrupted: %s", e)


def _finished(spec: StudySpec, counts: Tally) -> bool:
    target = spec.budget.trials
    return target is not None and spec.budget.time_s is None and counts.finished >= target


def _already_finished(plan: Plan, url: str, counts: Tally) -> LaunchResult:
    """A study at its budget: say so, start nothing."""
    target = plan.spec.budget.trials
    best = None
    if counts.best_trial is not None:
        trial = open_study(plan.spec.name, url).trials[counts.best_trial]
        best = TrialConfig.from_json(trial.user_attrs[CONFIG_ATTR])
    note = (
        f"study {plan.spec.name!r} already has {counts.finished} finished trials, its budget "
        f"of {target}; to run more, pass --trials N with N the new total (above {target})"
    )
    progress = Progress(counts, target, 0.0)
    return LaunchResult(plan.spec.name, url, progress, best, 0, note)


def _identity(plan: Plan) -> StudyIdentity:
    spec = plan.spec
    return StudyIdentity(
        name=spec.name,
        direction=spec.objective.direction,
        fingerprint=plan.fingerprint,
        metric=spec.objective.metric,
        task=spec.task.name,
        search_space=str(spec.search_space),
        record=identity(spec),
    )


def _pool(spec: StudySpec, ray_address: str | None) -> WorkerPool:
    from groupwise.execution._pool import WorkerPool

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


def _ledger(plan: Plan, url: str, who: StudyIdentity) -> Ledger:
    spec = plan.spec

    def sampler(existing: int) -> Any:
        # A first launch samples as the seed says; a relaunch continues the search from a
        # seed of its own (the same seed would replay the first launch's proposals).
        return plan.sampler.reseeded(*([existing] if existing else [])).build()

    return Ledger.open(
        url,
        who,
        sampler=sampler,
        pruner=plan.pruner.build(),
        heartbeat=(spec.faults.heartbeat_s, spec.faults.stale_after_s),
        max_retries=spec.faults.max_retries,
        driver=DRIVER,
        patience_s=spec.faults.database_patience_s,
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
