"""The driver: ask -> sample -> dispatch to a free worker -> per-epoch report -> prune -> tell.

It is the only writer to storage (which keeps SQLite safe). Workers are long-lived Ray actors
that train one epoch per call, so every epoch's report comes back here, goes into
``trial.report``, and the pruning decision is simply whether to ask for another epoch.
Failures are data: an exception, a divergence, a timeout or a lost worker ends that trial
with its reason in ``groupwise.fail_reason``, and the study goes on.

Faults of the machinery are retried (``faults.max_retries``): a lost worker, a driver that
died (its trials stop getting heartbeats and are failed as stale by whichever driver sees
them first) or one that was interrupted. The failed attempt is marked ``groupwise.retried``
and its parameters are enqueued again; the budget counts every finished trial except such
superseded attempts, so a resumed study ends with exactly its budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
import ray
import torch
from optuna.trial import TrialState

from groupwise.config import TrialConfig
from groupwise.errors import GroupwiseError, SpecError, StudyError
from groupwise.execution._admission import estimate_memory
from groupwise.execution._optuna import PRUNERS, SAMPLERS, build
from groupwise.execution._worker import Worker
from groupwise.sampling import PartitionFacts, canonical_key, groups_of, partition_facts, sample
from groupwise.spec import StudySpec
from groupwise.store import (
    ATTEMPT_ATTR,
    CANONICAL_ATTR,
    CONFIG_ATTR,
    DUPLICATE_ATTR,
    FINGERPRINT_ATTR,
    METRIC_ATTR,
    REASON_ATTR,
    RETRIED_ATTR,
    RETRY_OF_ATTR,
    RUN_ATTR,
    SPACE_ATTR,
    TASK_ATTR,
    GroupRecord,
    WriteThroughStorage,
    add_epoch,
    end_run,
    migrate,
    open_storage,
    resolve_url,
    start_run,
)
from groupwise.tasks import resolve_task

if TYPE_CHECKING:  # the driver hands store's connection on; it runs no SQL of its own
    import sqlalchemy

__all__ = ["LaunchResult", "Prepared", "Progress", "launch", "prepare"]

log = logging.getLogger("groupwise")

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
DRIVER = f"{socket.gethostname()}:{os.getpid()}"  # this process, recorded with each run
WHERE_KEYS = ("host", "pid", "device", "node", "gpu_ids", "visible_devices")


@dataclass(frozen=True)
class Prepared:
    """Everything checked and built before the database is touched."""

    spec: StudySpec
    facts: PartitionFacts
    sampler: optuna.samplers.BaseSampler
    pruner: optuna.pruners.BasePruner
    fingerprint: str


@dataclass(frozen=True)
class Progress:
    finished: int  # counted toward the budget: complete + pruned + failed (not retried)
    target: int | None
    running: int  # this driver's and any other's on the same study
    complete: int
    pruned: int
    failed: int
    retried: int  # failed attempts whose parameters were enqueued again
    best: float | None
    best_trial: int | None
    elapsed_s: float


@dataclass(frozen=True)
class LaunchResult:
    study: str
    storage: str
    progress: Progress
    best_config: TrialConfig | None
    ran: int  # trials finished by this launch


def prepare(spec: StudySpec) -> Prepared:
    """Resolve the task, partition its model every way the space allows, build the sampler and
    pruner. Raises SpecError naming the study file for anything that would fail later."""
    where = str(spec.source or spec.name)
    try:
        task = resolve_task(spec.task.name, spec.task.options, seed=spec.seed)
    except GroupwiseError as e:
        raise SpecError(f"{where}: task: {e}") from e
    if spec.objective.metric not in task.metric_names:
        raise SpecError(
            f"{where}: objective.metric: task {spec.task.name!r} reports "
            f"[{', '.join(task.metric_names)}]; got {spec.objective.metric!r}"
        )
    torch.manual_seed(spec.seed)
    try:
        model = task.build_model()
    except Exception as e:
        raise SpecError(f"{where}: task: building the model failed: {type(e).__name__}: {e}") from e
    facts = partition_facts(model, spec.space, source=str(spec.search_space))
    sampler = build(
        "sampler",
        SAMPLERS,
        spec.sampler.name,
        spec.sampler.options,
        f"{where}: sampler",
        seed=spec.seed,
    )
    pruner = build(
        "pruner",
        PRUNERS,
        spec.pruner.name,
        spec.pruner.options,
        f"{where}: pruner",
        extra={"max_resource": spec.training.epochs} if spec.pruner.name == "hyperband" else {},
    )
    return Prepared(spec, facts, sampler, pruner, _fingerprint(spec))


def _fingerprint(spec: StudySpec) -> str:
    """What makes two launches the same study: task, space, objective, training, seed."""
    identity = {
        "task": spec.task.model_dump(mode="json"),
        "space": spec.space.model_dump(mode="json"),
        "objective": spec.objective.model_dump(mode="json"),
        "training": spec.training.model_dump(mode="json"),
        "seed": spec.seed,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Running:
    trial: optuna.Trial
    worker: int
    run_id: int  # its groupwise_runs row
    rebuilds: int  # the mirror's rebuild count when ``trial`` was read
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class _Outcome:
    state: TrialState
    value: float | None
    intermediate: dict[int, float]
    reason: str
    number: int
    constraints: dict[str, float]


class _Driver:
    def __init__(
        self,
        prepared: Prepared,
        storage_url: str,
        ray_address: str | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.p = prepared
        self.spec = prepared.spec
        self.storage_url = storage_url
        self.ray_address = ray_address
        self.on_progress = on_progress or (lambda progress: None)
        self.started = time.perf_counter()
        self.in_flight: dict[ray.ObjectRef[Any], _Running] = {}
        self.workers: list[Any] = []
        self.free: list[int] = []
        self.outcomes: dict[str, _Outcome] = {}
        self.ran = 0
        self.mirror: WriteThroughStorage | None = None
        self.memory_budget: int | None = None  # bytes a trial may use; None: not checked

    # -- set-up ------------------------------------------------------------------------------
    def open_study(self) -> optuna.Study:
        faults = self.spec.faults
        storage = open_storage(
            self.storage_url, create=True, heartbeat=(faults.heartbeat_s, faults.stale_after_s)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                storage=storage,
                sampler=self.p.sampler,
                pruner=self.p.pruner,
                study_name=self.spec.name,
                direction=self.spec.objective.direction,
                load_if_exists=True,
            )
        migrate(storage.engine)  # groupwise's own tables, beside Optuna's
        # Re-open through the in-memory mirror: the sampler's reads stop costing SQL queries.
        mirror = self.mirror = WriteThroughStorage(storage, self.spec.name)
        study = optuna.load_study(
            study_name=self.spec.name, storage=mirror, sampler=self.p.sampler, pruner=self.p.pruner
        )
        known = study.user_attrs.get(FINGERPRINT_ATTR)
        if known is None:
            study.set_user_attr(FINGERPRINT_ATTR, self.p.fingerprint)
            study.set_user_attr(TASK_ATTR, self.spec.task.name)
            study.set_user_attr(METRIC_ATTR, self.spec.objective.metric)
            study.set_user_attr(SPACE_ATTR, str(self.spec.search_space))
        elif known != self.p.fingerprint:
            raise StudyError(
                f"study {self.spec.name!r} in {self.storage_url} was launched with a different "
                "task, search space, objective, training or seed; give this study file a new "
                "name, or launch the original again"
            )
        if study.direction.name.lower() != self.spec.objective.direction:
            raise StudyError(
                f"study {self.spec.name!r} exists with direction {study.direction.name.lower()}; "
                f"the study file asks for {self.spec.objective.direction}"
            )
        for trial in study.get_trials(deepcopy=False, states=FINISHED):
            self._remember(trial)
        # Adopt the RUNNING trials found here: one heartbeat each. A live driver's trials
        # lose nothing (it keeps beating); trials that never had a heartbeat (an older
        # groupwise, a crash before the first one) can now go stale instead of being waited
        # for forever.
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            mirror.record_heartbeat(trial._trial_id)
        return study

    def start_workers(self) -> None:
        if not ray.is_initialized():
            _check_reachable(self.ray_address)
            path = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)
            try:
                # "local" always starts a private instance: a bare ray.init() would join any
                # cluster a `ray start` recorded on this machine, even one that has died since.
                ray.init(
                    address=self.ray_address or "local",
                    include_dashboard=False,
                    configure_logging=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"PYTHONPATH": path}},
                )
            except (ConnectionError, RuntimeError) as e:
                raise StudyError(
                    f"could not join the Ray cluster at {self.ray_address!r}: "
                    f"{str(e).splitlines()[0]}. Clusters started with `ray start` use token "
                    "authentication: set RAY_AUTH_MODE=token and make the cluster's token "
                    "available (~/.ray/auth_token or RAY_AUTH_TOKEN)"
                ) from e
        w = self.spec.workers
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        need_cpu, need_gpu = w.count * w.cpus_per_trial, w.count * w.gpus_per_trial
        if need_cpu > resources.get("CPU", 0) or need_gpu > resources.get("GPU", 0):
            raise StudyError(
                f"workers: {w.count} x ({w.cpus_per_trial} CPU, {w.gpus_per_trial} GPU) needs "
                f"{need_cpu:g} CPU and {need_gpu:g} GPU; the Ray cluster has "
                f"{resources.get('CPU', 0):g} CPU and {resources.get('GPU', 0):g} GPU. Lower "
                "workers.count (or --workers) or the resources per trial"
            )
        self.workers = [self._new_worker() for _ in range(w.count)]
        self.free = list(range(w.count))
        if w.memory_per_trial_mb is not None:
            self.memory_budget = int(w.memory_per_trial_mb * 2**20)
        elif w.gpus_per_trial > 0:  # a trial's share of its GPU: several trials share one
            sizes = [
                i["device_memory_bytes"] for i in ray.get([a.where.remote() for a in self.workers])
            ]
            if all(sizes):
                self.memory_budget = int(min(sizes) * min(1.0, w.gpus_per_trial))

    def _new_worker(self) -> Any:
        w, t = self.spec.workers, self.spec.training
        actor = ray.remote(_RayWorker).options(num_cpus=w.cpus_per_trial, num_gpus=w.gpus_per_trial)
        return actor.remote(
            task=self.spec.task.name,
            task_options=dict(self.spec.task.options),
            seed=self.spec.seed,
            batch_size=t.batch_size,
            steps_per_epoch=t.steps_per_epoch,
            cpus=w.cpus_per_trial,
        )

    # -- the loop ----------------------------------------------------------------------------
    def run(self, study: optuna.Study) -> None:
        target = self.spec.budget.trials
        deadline = self.started + self.spec.budget.time_s if self.spec.budget.time_s else math.inf
        next_tick = 0.0
        while True:
            now = time.perf_counter()
            if now >= next_tick:
                self._tick(study)
                next_tick = now + self.spec.faults.heartbeat_s
            self._check_timeouts(study)
            if self.free and self.mirror is not None and self.mirror.foreign_trials:
                self.mirror.sync()  # a shared study: see the others' trials before starting one
            view = self._view(study)
            # Trials running anywhere (ours, another driver's, a dead driver's not yet found
            # stale) count as started: a resumed study must not overshoot its budget.
            while (
                self.free
                and time.perf_counter() < deadline
                and (target is None or view.finished + view.running < target)
            ):
                self._start_trial(study)
                view = self._view(study)
            self.on_progress(view)
            wake = min(next_tick, self._next_timeout())
            if not self.in_flight:
                if time.perf_counter() >= deadline or target is None or view.finished >= target:
                    return
                # Only other drivers' trials are left: wait for them to finish or go stale.
                time.sleep(max(0.0, wake - time.perf_counter()))
                continue
            timeout = max(0.0, wake - time.perf_counter())
            ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=timeout)
            if ready:
                self._handle(study, ready[0])

    def _tick(self, study: optuna.Study) -> None:
        """Once per heartbeat: mark our trials alive, take in other drivers' writes, and fail
        (and retry) trials whose driver has stopped beating."""
        assert self.mirror is not None
        for run in self.in_flight.values():
            self.mirror.record_heartbeat(run.trial._trial_id)
        self.mirror.sync()
        ours = {run.trial._trial_id for run in self.in_flight.values()}
        for trial_id in self.mirror.stale_trials():
            if trial_id not in ours:
                self._lose(
                    study,
                    trial_id,
                    f"stale: no heartbeat from its driver for over "
                    f"{self.spec.faults.stale_after_s} s (the driver died or was cut off)",
                )

    def _next_timeout(self) -> float:
        limit = self.spec.faults.trial_timeout_s
        if limit is None or not self.in_flight:
            return math.inf
        return min(run.started for run in self.in_flight.values()) + limit

    def _check_timeouts(self, study: optuna.Study) -> None:
        limit = self.spec.faults.trial_timeout_s
        if limit is None:
            return
        now = time.perf_counter()
        for ref, run in list(self.in_flight.items()):
            if now - run.started >= limit:
                del self.in_flight[ref]
                ray.kill(self.workers[run.worker], no_restart=True)  # stop it mid-epoch
                self._close(
                    study,
                    run,
                    TrialState.FAIL,
                    reason=f"timeout: still training after {now - run.started:.1f} s "
                    f"(faults.trial_timeout_s is {limit:g})",
                )
                self.workers[run.worker] = self._new_worker()
                self.free.append(run.worker)

    # -- a trial's life: each step one transaction, Optuna's writes and groupwise's rows --------
    def _start_trial(self, study: optuna.Study) -> None:
        assert self.mirror is not None
        opened = self.mirror.transact("start a trial", lambda c: self._open_trial(study, c))
        if opened is None:  # replayed or infeasible: already recorded
            self.ran += 1
            return
        trial, config, run_id = opened
        worker = self.free.pop()
        ref = self.workers[worker].step.remote(config.to_dict())
        self.in_flight[ref] = _Running(trial, worker, run_id, self.mirror.rebuilds)

    def _open_trial(
        self, study: optuna.Study, connection: sqlalchemy.Connection
    ) -> tuple[optuna.Trial, TrialConfig, int] | None:
        trial = study.ask()
        config = sample(trial, self.spec.space, self.p.facts)
        key = canonical_key(config, self.p.facts)
        trial.set_user_attr(CONFIG_ATTR, config.to_json())
        trial.set_user_attr(CANONICAL_ATTR, key)
        outcome = self.outcomes.get(key)
        attrs = trial.user_attrs
        run_id = start_run(
            connection,
            study=self.spec.name,
            trial_number=trial.number,
            attempt=int(attrs.get(ATTEMPT_ATTR, 1)),
            retry_of=attrs.get(RETRY_OF_ATTR),
            scheme=str(config.scheme),
            config=config.to_dict(),
            groups=self._group_records(config),
            driver=DRIVER,
            duplicate_of=outcome.number if outcome else None,
        )
        if outcome is not None:
            self._replay(study, trial, outcome, connection)
            return None
        if self.memory_budget is not None:
            need = estimate_memory(config, self.p.facts)
            if need.total > self.memory_budget:  # not started: it cannot fit
                self._end(
                    study,
                    trial._trial_id,
                    TrialState.PRUNED,
                    connection,
                    reason=f"out of memory (not started): needs about "
                    f"{need.total / 2**20:.1f} MiB for parameters, gradients and optimizer "
                    f"state ({need.optimizer_state / 2**20:.1f} MiB of it state); a trial "
                    f"may use {self.memory_budget / 2**20:.1f} MiB",
                    infeasible=need.total / self.memory_budget - 1.0,
                )
                return None
        return trial, config, run_id

    def _group_records(self, config: TrialConfig) -> list[GroupRecord]:
        tensors = self.p.facts.tensors
        return [
            GroupRecord(
                label=label,
                optimizer=config.groups[label].optimizer,
                hyperparameters=dict(config.groups[label].hyperparameters),
                parameter_names=names,
                parameter_count=sum(math.prod(tensors[n][0]) for n in names),
            )
            for label, names in groups_of(config, self.p.facts).items()
        ]

    def _handle(self, study: optuna.Study, ref: ray.ObjectRef[Any]) -> None:
        run = self.in_flight.pop(ref)
        try:
            result = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
            self._lose(study, run.trial._trial_id, f"worker lost: {type(e).__name__}{_cause(e)}")
            self.workers[run.worker] = self._new_worker()
            self.free.append(run.worker)
            return
        if result["state"] == "out_of_memory":
            self._close(study, run, TrialState.PRUNED, reason=result["reason"], infeasible=1.0)
        elif result["state"] != "epoch":
            diverged = result["state"] == "diverged"
            self._close(study, run, TrialState.FAIL, reason=result["reason"], remember=diverged)
        else:
            report = result["report"]
            value = report["metrics"][self.spec.objective.metric]
            epoch = report["epoch"]
            if not math.isfinite(value):
                reason = f"diverged: {self.spec.objective.metric} is {value} at epoch {epoch}"
                self._close(study, run, TrialState.FAIL, reason=reason, remember=True)
            else:
                self._record_epoch(study, run, report, value)
                if epoch >= self.spec.training.epochs:
                    self._close(study, run, TrialState.COMPLETE, value=value, result=result)
                elif self._trial(study, run).should_prune():
                    self._close(study, run, TrialState.PRUNED, result=result)
                else:
                    self.in_flight[self.workers[run.worker].step.remote(None)] = run
                    return
        self.free.append(run.worker)

    def _trial(self, study: optuna.Study, run: _Running) -> optuna.Trial:
        """The run's Trial, re-read if the mirror was rebuilt (a rolled-back transaction
        must not leave a cached intermediate value that the database lacks)."""
        assert self.mirror is not None
        if run.rebuilds != self.mirror.rebuilds:
            run.trial = optuna.Trial(study, run.trial._trial_id)
            run.rebuilds = self.mirror.rebuilds
        return run.trial

    def _record_epoch(
        self, study: optuna.Study, run: _Running, report: dict[str, Any], value: float
    ) -> None:
        assert self.mirror is not None

        def record(connection: sqlalchemy.Connection) -> None:
            self._trial(study, run).report(value, step=report["epoch"])
            add_epoch(
                connection,
                run.run_id,
                epoch=report["epoch"],
                train_loss=report["train_loss"],
                metrics=report["metrics"],
                metric=self.spec.objective.metric,
                lrs=report["lrs"],
                elapsed_s=report["elapsed_s"],
            )

        self.mirror.transact("record an epoch", record)

    def _close(
        self,
        study: optuna.Study,
        run: _Running,
        state: TrialState,
        *,
        value: float | None = None,
        reason: str = "",
        result: dict[str, Any] | None = None,
        infeasible: float | None = None,
        remember: bool | None = None,
    ) -> None:
        """End one of this driver's trials, in one transaction. ``remember``: whether a later
        trial with the same canonical config replays this outcome instead of training."""
        assert self.mirror is not None
        where = {"wall_s": round(time.perf_counter() - run.started, 3), "driver": DRIVER}
        if result is not None:
            where |= {
                "peak_memory_bytes": result.get("peak_memory_bytes", 0),
                **{k: result.get(k) for k in WHERE_KEYS},
            }
        frozen = self.mirror.transact(
            "end a trial",
            lambda c: self._end(
                study,
                self._trial(study, run)._trial_id,
                state,
                c,
                value=value,
                reason=reason,
                where=where,
                infeasible=infeasible,
            ),
        )
        if frozen is None:
            return  # another driver failed it as stale while this one was cut off
        self.ran += 1
        if remember is None:  # by default: what training decided, not what the machinery did
            remember = state != TrialState.FAIL
        if remember:
            self._remember(frozen)

    def _end(
        self,
        study: optuna.Study,
        trial_id: int,
        state: TrialState,
        connection: sqlalchemy.Connection,
        *,
        value: float | None = None,
        reason: str = "",
        where: dict[str, Any] | None = None,
        infeasible: float | None = None,
    ) -> optuna.trial.FrozenTrial | None:
        """Optuna's tell and the run row's end; None when the trial had already ended.

        ``infeasible``: out of memory (or sure to be): a violated ``memory`` constraint, the
        fraction it is over (1.0 when unknown), so the sampler learns where not to go.
        """
        if study._storage.get_trial(trial_id).state.is_finished():
            return None
        trial = optuna.Trial(study, trial_id)
        if infeasible is not None:
            trial.set_constraint("memory", max(infeasible, 1e-6))
        if reason:
            trial.set_user_attr(REASON_ATTR, reason)
        if where is not None:
            trial.set_user_attr(RUN_ATTR, where)
        frozen = study.tell(trial, value, state=state, skip_if_finished=True)
        end_run(
            connection,
            self.spec.name,
            frozen.number,
            state=state.name,
            value=frozen.value,
            reason=reason,
            where=where,
        )
        return frozen

    def _replay(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        outcome: _Outcome,
        connection: sqlalchemy.Connection,
    ) -> None:
        """The same training already ran: record its outcome instead of training again."""
        trial.set_user_attr(DUPLICATE_ATTR, outcome.number)
        for name, value in outcome.constraints.items():
            trial.set_constraint(name, value)
        for step, value in sorted(outcome.intermediate.items()):
            trial.report(value, step=step)
        final = outcome.value if outcome.state == TrialState.COMPLETE else None
        self._end(
            study, trial._trial_id, outcome.state, connection, value=final, reason=outcome.reason
        )

    def _lose(self, study: optuna.Study, trial_id: int, reason: str) -> None:
        """Fail a trial the machinery lost and, within ``faults.max_retries``, enqueue its
        parameters again, in one transaction. Whoever fails it first (this driver or
        another) retries it."""
        assert self.mirror is not None
        if self.mirror.transact(
            "fail a lost trial", lambda c: self._fail_lost(study, trial_id, reason, c)
        ):
            self.ran += 1

    def _fail_lost(
        self, study: optuna.Study, trial_id: int, reason: str, connection: sqlalchemy.Connection
    ) -> bool:
        storage = study._storage
        trial = storage.get_trial(trial_id)
        if trial.state.is_finished():
            return False
        attempt = int(trial.user_attrs.get(ATTEMPT_ATTR, 1))
        retry = attempt <= self.spec.faults.max_retries
        storage.set_trial_user_attr(trial_id, REASON_ATTR, reason)
        if retry:  # set before the state: a finished trial takes no more attributes
            storage.set_trial_user_attr(trial_id, RETRIED_ATTR, True)
        try:
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                return False
        except optuna.exceptions.UpdateFinishedTrialError:
            return False  # another driver failed it first, and retried it
        end_run(connection, self.spec.name, trial.number, state="FAIL", reason=reason)
        if retry:
            first = int(trial.user_attrs.get(RETRY_OF_ATTR, trial.number))
            study.enqueue_trial(
                trial.params, user_attrs={RETRY_OF_ATTR: first, ATTEMPT_ATTR: attempt + 1}
            )
            log.info("trial %d lost (%s); retry %d enqueued", trial.number, reason, attempt)
        return True

    def _remember(self, trial: optuna.trial.FrozenTrial) -> None:
        key = trial.user_attrs.get(CANONICAL_ATTR)
        if key is None or key in self.outcomes:
            return
        reason = trial.user_attrs.get(REASON_ATTR, "")
        if trial.state == TrialState.FAIL and not reason.startswith("diverged"):
            return
        self.outcomes[key] = _Outcome(
            trial.state,
            trial.value,
            dict(trial.intermediate_values),
            reason,
            trial.number,
            dict(trial.constraints),
        )

    # -- reporting ---------------------------------------------------------------------------
    def _view(self, study: optuna.Study) -> Progress:
        counts = dict.fromkeys(TrialState, 0)
        retried = 0
        best: tuple[float, int] | None = None
        sign = 1.0 if self.spec.objective.direction == "minimize" else -1.0
        for trial in study.get_trials(deepcopy=False):  # from memory: cheap
            if trial.state == TrialState.FAIL and trial.user_attrs.get(RETRIED_ATTR):
                retried += 1
                continue
            counts[trial.state] += 1
            value = trial.value if trial.state == TrialState.COMPLETE else None
            if value is not None and (best is None or sign * value < sign * best[0]):
                best = (value, trial.number)
        return Progress(
            finished=sum(counts[state] for state in FINISHED),
            target=self.spec.budget.trials,
            running=counts[TrialState.RUNNING],
            complete=counts[TrialState.COMPLETE],
            pruned=counts[TrialState.PRUNED],
            failed=counts[TrialState.FAIL],
            retried=retried,
            best=best[0] if best else None,
            best_trial=best[1] if best else None,
            elapsed_s=time.perf_counter() - self.started,
        )

    def stop(self, study: optuna.Study | None, reason: str) -> None:
        """Record trials still in flight as lost (with ``reason``, so they are retried when
        the study is launched again) and release the workers."""
        if study is not None:
            for run in list(self.in_flight.values()):
                self._lose(study, run.trial._trial_id, reason)
        self.in_flight.clear()
        for worker in self.workers:
            ray.kill(worker)
        self.workers = []


class _RayWorker(Worker):
    """The Worker as Ray runs it: it reads the GPU ids Ray assigned to it, and its node."""

    def __init__(self, **settings: Any) -> None:
        gpu_ids = [str(i) for i in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]
        super().__init__(**settings, gpu_ids=gpu_ids)

    def where(self) -> dict[str, Any]:
        return {**super().where(), "node": ray.get_runtime_context().get_node_id()}


def _cause(error: BaseException) -> str:
    """The actor's own error, e.g. " (ModuleNotFoundError: No module named 'groupwise')"."""
    lines = [line.strip() for line in str(error).splitlines()]
    causes = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception"))]
    return f" ({causes[-1][:200]})" if causes else ""


def _check_reachable(address: str | None) -> None:
    """Fail fast on a cluster address nobody answers: Ray itself waits minutes for it."""
    if address in (None, "", "auto", "local"):
        return
    host, _, port = str(address).removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise StudyError(
            f"cannot reach a Ray cluster at {address!r} ({reason}); start one with "
            "`ray start --head --port=PORT` and pass --ray-address HOST:PORT, or leave "
            "--ray-address out to run on this machine"
        ) from e


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def launch(
    spec: StudySpec,
    *,
    storage: str | None = None,
    ray_address: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    prepared: Prepared | None = None,
) -> LaunchResult:
    """Run (or continue) a study until its budget of finished trials or its time is spent.

    ``prepared`` is :func:`prepare`'s result for ``spec`` when the caller already has it.
    """
    prepared = prepared or prepare(spec)  # every check before the database is touched
    url = resolve_url(storage)
    driver = _Driver(prepared, url, ray_address, on_progress)
    owns_ray = not ray.is_initialized()
    study = None
    try:
        driver.start_workers()  # the cluster can refuse the workers: before any write
        study = driver.open_study()
        driver.run(study)
    except BaseException:
        driver.stop(study, "interrupted: the driver stopped while the trial ran")
        raise
    finally:
        driver.stop(None, "")
        if owns_ray:
            ray.shutdown()
    progress = driver._view(study)
    best = _best(study)
    config = TrialConfig.from_json(best.user_attrs[CONFIG_ATTR]) if best else None
    return LaunchResult(spec.name, url, progress, config, driver.ran)
