"""``launch``: a plan, a database and a Ray cluster -> a study run to its budget.

Order matters. The plan is checked first (no database, no Ray); a fast start forks its local
workers then, before any connection or thread exists for them to share; then the study
database is read, not written, so a study launched before with another file, or one already
at its budget, is answered at once; then the cluster is asked for the workers (it can refuse
them) before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from groupwise import _interrupts as interrupts
from groupwise.config import TrialConfig
from groupwise.errors import GroupwiseError, StudyError
from groupwise.execution._bridge import BridgedPool, bridge_refusal
from groupwise.execution._driver import DRIVER, Driver
from groupwise.execution._progress import Progress
from groupwise.execution._protocol import WorkerSettings
from groupwise.execution._slots import BatchedPool
from groupwise.plan import Plan, identity, make_plan, proxy_task
from groupwise.store import (
    Ledger,
    StudyIdentity,
    Tally,
    check_source,
    check_study,
    record_transfer,
    resolve_url,
    stored_config,
)
from groupwise.studyfiles import StudySpec
from groupwise.training import TrainingOptions
from groupwise.transfer import Transferred, transfer_to_task

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
    ran: int  # trials this launch trained to an end that counts toward the budget
    note: str = ""  # why it stopped, when that is not its budget
    transferred: Transferred | None = None  # the best config at the study's transfer target


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
    pool = _pool(spec, ray_address)  # a fast start forks its local workers: before any SQL
    try:
        known = check_launch(plan, url)
        if known is not None and _finished(spec, known):
            return _already_finished(plan, url, known)
        pool.start()  # the cluster can refuse the workers: before any write
        with interrupts.deferring():  # set after Ray's start-up, whose SIGTERM handler aborts
            driver = _drive(plan, url, who, pool, on_progress)
    finally:
        pool.close()
    progress, best = driver.progress(), driver.best_config()
    carried = _transfer(plan, url, progress.counts, best)
    return LaunchResult(spec.name, url, progress, best, driver.ran, driver.note, carried)


def check_launch(plan: Plan, storage: str | None = None) -> Tally | None:
    """What a launch checks in the database before Ray, read-only: an existing study of
    this name must be this study (else StudyError naming what changed), and every warm-start
    study must be one it can start from. Returns the study's counts, None if it is new."""
    url, who = resolve_url(storage), _identity(plan)
    known = check_study(url, who)
    for source in plan.spec.warm_start.studies:
        check_source(url, who, source)
    return known


def _drive(
    plan: Plan,
    url: str,
    who: StudyIdentity,
    pool: WorkerPool | BatchedPool | BridgedPool,
    on_progress: Callable[[Progress], None] | None,
) -> Driver:
    """Record the study and its seeds, then run the driver to the end. Ctrl-C and SIGTERM
    land only at its safe points; the trials running then are recorded as interrupted."""
    ledger = _ledger(plan, url, who)
    for source in plan.spec.warm_start.studies:
        ledger.warm_start.seed_from(source)
    ledger.warm_start.enqueue([(s.recipe, s.params) for s in plan.seeds if not s.follows])
    driver = Driver(plan, ledger, pool, on_progress, _memory_budget(plan.spec, pool))
    try:
        driver.run()
    except BaseException as e:
        _stop(driver, e)
        raise
    return driver


def _stop(driver: Driver, cause: BaseException) -> None:
    """Record the running trials as interrupted (retried next launch), best effort: with the
    database gone, they stay RUNNING and the next launch fails them as stale instead. When
    the launch stops because the database is gone, that error is what the user reads, once:
    the same outage met again here is not said a second time."""
    try:
        driver.stop("interrupted: the driver stopped while the trial ran")
    except StudyError as e:
        if not isinstance(cause, StudyError):
            log.warning("could not record the running trials as interrupted: %s", e)


def _finished(spec: StudySpec, counts: Tally) -> bool:
    target = spec.budget.trials
    return target is not None and spec.budget.time_s is None and counts.finished >= target


def _already_finished(plan: Plan, url: str, counts: Tally) -> LaunchResult:
    """A study at its budget: say so, start nothing."""
    target = plan.spec.budget.trials
    best = None
    if counts.best_trial is not None:
        config = stored_config(plan.spec.name, counts.best_trial, url)
        best = None if config is None else TrialConfig.from_json(config)
    note = (
        f"study {plan.spec.name!r} already has {counts.finished} finished trials, its budget "
        f"of {target}; to run more, pass --trials N with N the new total (above {target})"
    )
    progress = Progress(counts, target, 0.0)
    carried = _transfer(plan, url, counts, best)
    return LaunchResult(plan.spec.name, url, progress, best, 0, note, carried)


def _transfer(plan: Plan, url: str, counts: Tally, best: TrialConfig | None) -> Transferred | None:
    """The best config carried to the study's transfer target, and recorded with the study
    (its check, ``groupwise transfer-check``, trains it there)."""
    target = plan.spec.transfer
    if target is None or best is None or counts.best_trial is None:
        return None
    try:
        done, where = transfer_to_task(
            best, proxy_task(plan.spec), target.task, target.options, target.rule
        )
    except GroupwiseError as e:  # the search stands; only its carried config is missing
        log.warning("the best config could not be carried to the transfer target: %s", e)
        return None
    document = {
        "trial": counts.best_trial,
        "value": counts.best_value,
        "target": {"name": where["name"], "options": where["options"]},
        "rule": target.rule,
        "config": done.config.to_dict(),
        "notes": list(done.notes),
    }
    record_transfer(plan.spec.name, url, document)
    return done


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


def _pool(spec: StudySpec, ray_address: str | None) -> WorkerPool | BatchedPool | BridgedPool:
    """The study's workers: Ray's (``workers.batch`` K candidates each), started by
    ``pool.start()``; where they can, local workers forked now train until Ray's start."""
    w, settings = spec.workers, _settings(spec)
    refusal = bridge_refusal(settings, w.count, w.gpus_per_trial, ray_address)
    if refusal:
        log.debug("no fast start: %s", refusal)
    else:
        bridge = BridgedPool(partial(_ray_pool, settings, spec, ray_address), settings, w.count)
        bridge.fork()
        return bridge
    pool = _ray_pool(settings, spec, ray_address)
    return BatchedPool(pool, settings.batch) if settings.batch > 1 else pool


def _ray_pool(settings: WorkerSettings, spec: StudySpec, ray_address: str | None) -> WorkerPool:
    from groupwise.execution._pool import WorkerPool  # Ray: only once the study needs workers

    w = spec.workers
    return WorkerPool(
        settings,
        count=w.count,
        cpus=w.cpus_per_trial,
        gpus=w.gpus_per_trial,
        ray_address=ray_address,
    )


def _settings(spec: StudySpec) -> WorkerSettings:
    w, t = spec.workers, spec.training
    batch = w.batch
    if batch > 1 and spec.task.function:
        log.warning(
            "workers.batch %d: a function task (task.train) trains in the user's own loop, "
            "which groupwise cannot batch; its trials train one at a time",
            batch,
        )
        batch = 1
    return WorkerSettings(
        task=spec.task.name,
        task_options=dict(spec.task.options),
        function=spec.task.function,
        seed=spec.seed,
        data_seed=spec.task.data_seed,
        cpus=w.cpus_per_trial,
        training=TrainingOptions(
            epochs=t.epochs,
            steps_per_epoch=t.steps_per_epoch,
            batch_size=t.batch_size,
            accumulate=t.accumulate,
            precision=t.precision,
            grad_clip_norm=t.grad_clip_norm,
            compile=t.compile,
        ),
        batch=batch,
    )


def _ledger(plan: Plan, url: str, who: StudyIdentity) -> Ledger:
    """The study opened for this launch; the ledger builds the plan's sampler and pruner."""
    spec = plan.spec
    return Ledger.open(
        url,
        who,
        sampler=plan.sampler,
        pruner=plan.pruner,
        heartbeat=(spec.faults.heartbeat_s, spec.faults.stale_after_s),
        max_retries=spec.faults.max_retries,
        driver=DRIVER,
        patience_s=spec.faults.database_patience_s,
    )


def _memory_budget(spec: StudySpec, pool: WorkerPool | BatchedPool | BridgedPool) -> int | None:
    """Bytes a trial may use: the study's setting, else on GPUs its worker's share of the
    smallest, which a worker's batch of K candidates splits (a K-th each)."""
    w = spec.workers
    k = pool.k if isinstance(pool, BatchedPool) else 1
    if w.memory_per_trial_mb is not None:
        return int(w.memory_per_trial_mb * 2**20)
    if w.gpus_per_trial <= 0:
        return None
    pool.wait_started()
    sizes = pool.device_memory()
    if not sizes or not all(sizes):
        return None
    return int(min(s for s in sizes if s) * min(1.0, w.gpus_per_trial)) // k
