"""The loop's steps at the Settings level: log compaction, a drift report, a performance report,
a retraining check, a retrain, and one day of the whole loop (:func:`run_loop_day`).

``churnops log compact``, ``churnops monitor drift|performance``, ``churnops retrain check|run``,
``churnops loop run``, the orchestrator's ops and sensor
(``churnops.orchestration``) and the policy backtest (``churnops simulate``) all call these, so a
step behaves the same whoever runs it. Each turns Settings into clients through
:mod:`churnops.wiring` and hands built objects to the components; none prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from churnops.contracts.decisions import DecisionState
from churnops.contracts.loop import LOOP_STEPS, LoopStep, StepStatus, loop_moment
from churnops.contracts.mlflow_keys import THRESHOLD_METRIC
from churnops.contracts.stages import Trigger

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from churnops.contracts.prediction_log import CompactionResult
    from churnops.retraining import RetrainPolicy
    from churnops.retraining.run import RetrainResult, TrainingWindow
    from churnops.scoring.batch import BatchScores
    from churnops.settings import Settings
    from monitoring.alerts import LoopEvent, Notifier
    from monitoring.baseline import TrainingWindow as FittedWindow
    from monitoring.drift import DriftResult
    from monitoring.performance import PerformanceReport
    from registry_ext import DecisionRecord

logger = logging.getLogger(__name__)
DRIFT_JOB = "churnops-drift"
PERFORMANCE_JOB = "churnops-performance"  # its own job: a push replaces the whole {job, model} group
RETRAIN_ACTOR = "churnops-retrain"


def window_bounds(
    settings: Settings, *, version: str | None, start: datetime | None, end: datetime | None, days: int
) -> tuple[datetime, datetime]:
    """The window asked for: by default the last ``days`` days up to just after the newest row of
    the model's production traffic (found by reading the ``ts`` column only)."""
    import pyarrow.compute as pc

    from churnops.contracts.prediction_log import MONITORED_ENDPOINTS
    from churnops.wiring import read_prediction_window

    name = settings.model_name
    if end is None or start is None:
        stamps = read_prediction_window(
            settings, model_name=name, model_version=version, endpoints=MONITORED_ENDPOINTS, columns=["ts"]
        )
        if stamps.num_rows == 0:
            label = name if version is None else f"{name} v{version}"
            raise ValueError(
                f"the prediction log has no production traffic (predict or batch) for {label}: "
                "serve it or run `churnops score` first"
            )
        if end is None:
            end = pc.max(stamps.column("ts")).as_py() + timedelta(microseconds=1)
    if start is None:
        start = end - timedelta(days=days)
    return start, end


@dataclass(frozen=True)
class LogCompaction:
    """One compaction of the parquet prediction log: the partitions seen, those compacted."""

    log: Path
    partitions: int
    compacted: tuple[CompactionResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "log": str(self.log),
            "partitions": self.partitions,
            "compacted": [vars(r) for r in self.compacted],
            "files_in": sum(r.files_in for r in self.compacted),
            "rows": sum(r.rows_out for r in self.compacted),
        }


def compact_log(*, settings: Settings, before: date | None = None, min_files: int = 2) -> LogCompaction:
    """Merge each ``date=`` partition's small part files into one (``before``: only the days
    before it, the closed partitions serving no longer writes to). Safe while serving writes
    (``compact_partition``); the SQL log is one table and has no files: ValueError."""
    from churnops.contracts.prediction_log import PARTITION, compact_partition
    from churnops.wiring import prediction_log_dir

    if settings.serving_prediction_log_url:
        raise ValueError(
            "CHURNOPS_SERVING_PREDICTION_LOG_URL is set: the log is a SQL table, which has no files to "
            "compact (unset it to compact the parquet log under the home)"
        )
    root = prediction_log_dir(settings)
    days = sorted(p.name.split("=", 1)[1] for p in root.glob(f"{PARTITION}=*") if p.is_dir())
    closed = [day for day in days if before is None or day < before.isoformat()]
    results = [r for day in closed if (r := compact_partition(directory=root, day=day, min_files=min_files))]
    return LogCompaction(log=root, partitions=len(days), compacted=tuple(results))


def push(settings: Settings, gateway: str | None, *, job: str, **documents: Any) -> str | None:
    """Push monitoring gauges to ``gateway`` (or ``CHURNOPS_PUSHGATEWAY_URL``); None when neither."""
    from monitoring.prometheus import push_monitoring_metrics

    target = gateway or settings.pushgateway_url
    if not target:
        return None
    push_monitoring_metrics(gateway=target, job=job, model_name=settings.model_name, **documents)
    return target


def drift_report(
    *,
    settings: Settings,
    version: str,
    start: datetime | None = None,
    end: datetime | None = None,
    days: int = 31,
    html: Path | None = None,
    policy: Path | None = None,
    as_of: datetime | None = None,
    horizon: timedelta = timedelta(days=31),
    push_gateway: str | None = None,
) -> tuple[DriftResult, str | None]:
    """The drift report of a window: written, added to the workspace, logged to MLflow, pushed.

    Data and prediction drift are judged on the window's rows. Concept drift and the matured
    performance are judged on the matured labels of the window's labels window
    (:func:`churnops.contracts.monitoring_terms.labels_window`: the window *and the horizon before
    it*; a window's own predictions mature only a horizon later, so the newest window alone would
    never have labels).
    """
    from dataclasses import replace

    from churnops.contracts.columns import EVENT_TS
    from churnops.contracts.monitoring_terms import labels_window
    from churnops.contracts.prediction_log import FEATURE_TS
    from churnops.wiring import mlflow_client, prediction_window_rows, sample_prediction_window
    from monitoring.baseline import label_rows, load_baselines
    from monitoring.drift import detect_drift
    from monitoring.performance import matured_outcomes
    from monitoring.policy import load_policy
    from monitoring.report import add_to_workspace, log_to_mlflow, report_path, write_report_html

    rules = load_policy(policy or settings.drift_policy)
    known = as_of or settings.clock
    client = mlflow_client(settings)
    baselines = load_baselines(client=client, model_name=settings.model_name, version=version)
    # Memory bounded by the policy's sample, not by the window: the window's scored rows with
    # their features as a seeded sample of at most `current_rows`; the matured labels counted
    # whole from a few columns only (the concept test reads a seeded sample of them).
    lower, upper = window_bounds(settings, version=version, start=start, end=end, days=days)
    sample = sample_prediction_window(
        settings, start=lower, end=upper, model_version=version, max_rows=rules.current_rows, seed=rules.seed
    )
    current = sample.frame.reset_index(drop=True)
    labels_start, labels_end = labels_window(start=lower, end=upper, horizon=horizon)
    matured = matured_outcomes(
        predictions=prediction_window_rows(
            settings, start=labels_start, end=labels_end, model_version=version
        ),
        labels=label_rows(settings.sources_dir),
        as_of=known,
        horizon=horizon,
        training_windows={version: baselines.training_window},
        sample=rules.current_rows,  # counted whole; the figures read a seeded sample
        seed=rules.seed,
    )
    labelled = matured.frame.rename(columns={FEATURE_TS: EVENT_TS})
    result = detect_drift(
        reference=baselines.reference,
        current=current,
        holdout=baselines.holdout,
        labelled=labelled,
        policy=rules,
        model_name=settings.model_name,
        model_version=version,
        window_start=lower,
        window_end=upper,
    )
    result = replace(
        result,
        current_rows=sample.rows,
        current_sampled_rows=len(current),
        matured_labels=matured.matured_labels,
        labels_start=labels_start,
        labels_end=labels_end,
        as_of=known,
        performance=replace(result.performance, in_sample_excluded=matured.in_sample),
    )
    path = write_report_html(
        result=result, path=html or report_path(reports_dir=settings.layout.reports, result=result)
    )
    result = result.with_report_html(path.resolve())
    add_to_workspace(result=result, workspace_dir=settings.layout.evidently, project_name=settings.model_name)
    log_to_mlflow(client=client, result=result, html_path=path, artifact_location=settings.artifact_location)
    pushed = push(settings, push_gateway, job=DRIFT_JOB, drift_json=result.to_json())
    return result, pushed


def training_run(*, client: MlflowClient, model_name: str, version: str) -> Run | None:
    """The training run of a registered version, or None (with a warning) when MLflow holds no
    such version or run any more: the version is still reported, without its test metrics,
    threshold or training window (the report lists it among the unknown windows). Any other
    error (authentication, permission, network, server) is raised, never read as "deleted"."""
    from mlflow.exceptions import MlflowException

    try:
        run_id = client.get_model_version(model_name, version).run_id
        if run_id:
            return client.get_run(run_id)
        reason = "the version names no run"
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        reason = error.message
    logging.getLogger(__name__).warning(
        "version %s: no training run to read (%s); reported without its test metrics, threshold "
        "or training window",
        version,
        reason,
    )
    return None


def performance_report(
    *,
    settings: Settings,
    start: datetime | None,
    end: datetime | None,
    days: int,
    as_of: datetime,
    period: str,
    horizon: timedelta,
    push_gateway: str | None,
) -> tuple[PerformanceReport, str | None]:
    """Live performance of every version with traffic in the window, on its matured labels
    (every one: the window is read with the few columns the join needs, in bounded memory)."""
    from churnops.contracts.prediction_log import MONITORED_ENDPOINTS
    from churnops.wiring import mlflow_client, prediction_window_rows, read_prediction_window
    from monitoring.baseline import label_rows, training_window
    from monitoring.performance import performance_on_late_labels

    lower, upper = window_bounds(settings, version=None, start=start, end=end, days=days)
    traffic = read_prediction_window(
        settings,
        start=lower,
        end=upper,
        model_name=settings.model_name,
        endpoints=MONITORED_ENDPOINTS,
        columns=["model_version"],
    )
    client = mlflow_client(settings)
    metrics: dict[str, dict[str, float]] = {}
    windows: dict[str, FittedWindow | None] = {}
    versions = traffic.column("model_version").unique().drop_null().to_pylist()
    thresholds: dict[str, float | None] = {}
    for version in sorted({str(v) for v in versions}):
        run = training_run(client=client, model_name=settings.model_name, version=version)
        metrics[version] = dict(run.data.metrics) if run is not None else {}
        windows[version] = training_window(run.data.params) if run is not None else None
        thresholds[version] = metrics[version].get(THRESHOLD_METRIC)  # absent: warned below
        if run is not None and thresholds[version] is None:
            logging.getLogger(__name__).warning(
                "version %s: its training run %s recorded no %r metric; precision and recall "
                "at the threshold are left out",
                version,
                run.info.run_id,
                THRESHOLD_METRIC,
            )
    report = performance_on_late_labels(
        predictions=prediction_window_rows(settings, start=lower, end=upper, model_version=None),
        labels=label_rows(settings.sources_dir),
        as_of=as_of,
        horizon=horizon,
        period=period,  # type: ignore[arg-type]
        threshold=thresholds,
        reference_metrics=metrics,
        start=lower,
        end=upper,
        training_windows=windows,
        model_name=settings.model_name,
    )
    pushed = push(settings, push_gateway, job=PERFORMANCE_JOB, performance=report)
    return report, pushed


def check_retrain(
    *,
    settings: Settings,
    policy: RetrainPolicy,
    now: datetime,
    refresh: bool = False,
    as_of: datetime | None = None,
) -> DecisionRecord:
    """Evaluate the retraining policy (after a fresh drift report when ``refresh``) and record it.

    First marks FAILED the MLflow runs of retrains that were killed (when none is running)."""
    from churnops.retraining.check import check_and_record, fail_killed_runs_if_idle
    from churnops.retraining.orders import lease_holder
    from churnops.wiring import open_registry

    with open_registry(settings, write=True) as registry:
        fail_killed_runs_if_idle(registry=registry, holder=lease_holder())
        production = registry.production()
        if refresh and production is not None:
            drift_report(settings=settings, version=str(production.version), as_of=as_of or now)
        return check_and_record(
            registry=registry, policy=policy, now=now, actor=settings.actor or RETRAIN_ACTOR
        )


def retrain(
    *,
    settings: Settings,
    policy: RetrainPolicy,
    gate_policy: Path | None,
    forced: Trigger | None,
    now: datetime,
    decision_id: int | None = None,
    window: TrainingWindow | None = None,
    wait_s: float = 0.0,
    materialize_online: bool = False,
    promote: bool = True,
) -> RetrainResult:
    """Retrain on ``window`` (default: the policy's sliding window at ``now``) for decision
    ``decision_id`` (default: the newest fired decision not finished yet, resumed from its last
    step), or for ``forced`` (recorded as its own decision once the lease is held)."""
    from churnops.retraining.orders import order_from_decisions
    from churnops.retraining.run import policy_window, run_retrain
    from churnops.training import load_policy as load_gate_policy
    from churnops.wiring import feature_store, open_registry

    gates = load_gate_policy(gate_policy or settings.gate_policy)
    actor = settings.actor or RETRAIN_ACTOR
    with open_registry(settings, write=True) as registry:
        return run_retrain(
            store=feature_store(settings),
            registry=registry,
            sources_dir=settings.sources_dir,
            policy=policy,
            gate_policy=gates,
            order=lambda reg: order_from_decisions(
                registry=reg,
                policy_label=policy.label(),
                forced=forced,
                now=now,
                actor=actor,
                decision_id=decision_id,
            ),
            window=window or policy_window(policy=policy, now=now),
            now=now,
            actor=settings.actor,
            materialize_online=materialize_online,
            lock_timeout_s=wait_s,
            artifact_location=settings.artifact_location,
            promote=promote,
        )


def pending_retrain(*, settings: Settings) -> DecisionRecord | None:
    """The newest fired decision no retrain finished yet (None when there is none)."""
    from churnops.wiring import open_registry
    from registry_ext import pending_decision

    with open_registry(settings, write=False) as registry:
        return pending_decision(registry.engine, name=settings.model_name)


def promote_retrained(*, settings: Settings, policy: RetrainPolicy, decision_id: int, now: datetime) -> bool:
    """The promotion step of a retrain that stopped at Staging, under the retrain lease (True when
    the version reached Production)."""
    from churnops.contracts.stages import Stage
    from churnops.retraining.run import finish_promotion
    from churnops.wiring import open_registry

    with open_registry(settings, write=True) as registry:
        decision = finish_promotion(
            registry=registry,
            decision_id=decision_id,
            policy=policy,
            now=now,
            actor=settings.actor or RETRAIN_ACTOR,
        )
        return decision.last_detail(decision.state).get("stage") == Stage.PRODUCTION.value


def score_production(*, settings: Settings, as_of: datetime) -> BatchScores:
    """Batch-score every customer active at ``as_of`` with the Production version (loaded with
    serving's SHA-checked loader) and log each row to the prediction log."""
    from churnops.features.definitions import TTL
    from churnops.scoring.batch import ScoredModel, score_active_customers
    from churnops.wiring import feature_store, model_source, prediction_log_writer

    source = model_source(settings)
    ref = source.production()
    if ref is None:
        raise ValueError(
            f"model {settings.model_name!r} has no Production version: run `churnops train`, then "
            "`churnops registry promote VERSION --stage Staging|Production`"
        )
    sink = prediction_log_writer(settings)
    try:
        loaded = source.load(ref)
        return score_active_customers(
            store=feature_store(settings),
            model=ScoredModel(
                name=ref.name,
                version=ref.version,
                feature_service=ref.feature_service or settings.feature_service,
                estimator=loaded.estimator,
            ),
            sources_dir=settings.sources_dir,
            as_of=as_of,
            ttl=TTL["account"],
            sink=sink,
        )
    finally:
        dispose = getattr(sink, "dispose", None)
        if callable(dispose):
            dispose()


# --- one day of the loop ---------------------------------------------------------------------

LOOP_ACTOR = "churnops-loop"
MONITOR_DAYS = 31  # the drift and performance window: the newest month of production traffic
LABEL_HORIZON = timedelta(days=31)  # a prediction's label matures this long after it was made


@dataclass(frozen=True)
class LoopStepResult:
    """One step of a day: what it did (``detail``), and whether an earlier run of the day had
    recorded it already (``replayed``: it was not run again)."""

    step: LoopStep
    status: StepStatus
    detail: Mapping[str, Any]
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step.value,
            "status": self.status.value,
            "replayed": self.replayed,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class LoopDay:
    """One day of the loop: its steps so far, in order; ``failed_step``/``error`` when a step that
    was due could not complete (the day stops there, and a rerun resumes at that step)."""

    model_name: str
    day: date
    now: datetime
    steps: tuple[LoopStepResult, ...]
    failed_step: LoopStep | None = None
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.failed_step is None and {s.step for s in self.steps} == set(LOOP_STEPS)

    @property
    def replayed(self) -> bool:
        """Every step came from an earlier run's records: this run changed nothing."""
        return bool(self.steps) and all(s.replayed for s in self.steps)

    def step(self, name: LoopStep) -> LoopStepResult | None:
        return next((s for s in self.steps if s.step == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "day": self.day.isoformat(),
            "now": self.now.isoformat(),
            "complete": self.complete,
            "replayed": self.replayed,
            "failed_step": None if self.failed_step is None else self.failed_step.value,
            "error": self.error,
            "steps": [s.to_dict() for s in self.steps],
        }


class LoopNotifier(Protocol):
    """Where the loop's ``alert`` step hands the day's outcome (an Alertmanager client, a
    webhook ...). The loop calls ``notify`` once per day, after every other step finished."""

    def notify(self, *, day: LoopDay) -> Mapping[str, Any] | None: ...


class LoopStepError(RuntimeError):
    """A step that was due could not complete (busy retrain, refused materialization, nothing to
    score ...): the day stops at it and nothing of it is recorded, so a rerun runs it again."""

    def __init__(self, step: LoopStep, message: str) -> None:
        self.step = step
        super().__init__(f"step {step.value}: {message}")


def loop_day_problem(*, day: date, clock: datetime) -> str | None:
    """Why day ``day`` cannot run at ``clock`` (its first instant lies ahead), or None."""
    from churnops.contracts.clock import FutureTimeError, not_in_future

    try:
        not_in_future(
            loop_moment(day),
            field=f"day {day.isoformat()} (its loop runs as of its first instant)",
            wall=clock,
        )
    except FutureTimeError as error:
        return str(error)
    return None


def recorded_loop_day(*, settings: Settings, day: date) -> LoopDay:
    """The steps of ``day`` recorded so far (each ``replayed``), without running anything."""
    from churnops.wiring import open_registry
    from registry_ext import loop_day_steps

    with open_registry(settings, write=True) as registry:
        records = loop_day_steps(registry.engine, name=settings.model_name, day=day)
    steps = tuple(
        LoopStepResult(
            step=step, status=StepStatus(records[step].status), detail=records[step].detail, replayed=True
        )
        for step in LOOP_STEPS
        if step in records
    )
    return LoopDay(model_name=settings.model_name, day=day, now=loop_moment(day), steps=steps)


def run_loop_step(
    *,
    settings: Settings,
    day: date,
    step: LoopStep,
    policy: RetrainPolicy,
    gate_policy: Path | None = None,
    notifier: LoopNotifier | None = None,
) -> LoopStepResult:
    """Run ``step`` of ``day`` as of :func:`~churnops.contracts.loop.loop_moment` and record it,
    unless an earlier run recorded it (then its record comes back, ``replayed``, and nothing
    runs). A step reads what the steps before it recorded (the decision ``decide`` took, the
    version ``retrain`` registered), so the CLI and each of the orchestrator's ops can run it.
    :class:`LoopStepError` when it was due and could not complete (nothing recorded)."""
    from churnops.wiring import open_registry
    from registry_ext import LoopStepRecorded, loop_day_steps, record_loop_step

    problem = loop_day_problem(day=day, clock=settings.clock)
    if problem is not None:
        raise ValueError(problem)
    with open_registry(settings, write=True) as registry:
        records = loop_day_steps(registry.engine, name=settings.model_name, day=day)
    if step in records:
        found = records[step]
        return LoopStepResult(step=step, status=StepStatus(found.status), detail=found.detail, replayed=True)
    earlier = {name: dict(record.detail) for name, record in records.items()}
    needed = _NEEDS.get(step)
    if needed is not None and needed not in earlier:
        raise LoopStepError(step, f"step {needed.value} of {day} has not run yet: run the day in order")
    now = loop_moment(day)
    so_far = LoopDay(
        model_name=settings.model_name,
        day=day,
        now=now,
        steps=tuple(
            LoopStepResult(
                step=s, status=StepStatus(records[s].status), detail=records[s].detail, replayed=True
            )
            for s in LOOP_STEPS
            if s in records
        ),
    )
    status, detail = _LOOP_STEPS[step](
        settings=settings,
        now=now,
        day=day,
        policy=policy,
        gate_policy=gate_policy,
        notifier=notifier,
        earlier=earlier,
        so_far=so_far,
    )
    with open_registry(settings, write=True) as registry:
        try:
            record_loop_step(
                registry.engine,
                name=settings.model_name,
                day=day,
                step=step.value,
                status=status.value,
                time=now,
                actor=settings.actor or LOOP_ACTOR,
                detail=detail,
            )
        except LoopStepRecorded as raced:  # another run finished this step meanwhile: its record wins
            logging.getLogger(__name__).warning("%s; keeping that record", raced)
            found = raced.record
            return LoopStepResult(
                step=step, status=StepStatus(found.status), detail=found.detail, replayed=True
            )
    return LoopStepResult(step=step, status=status, detail=detail)


def run_loop_day(
    *,
    settings: Settings,
    day: date,
    policy: RetrainPolicy,
    gate_policy: Path | None = None,
    notifier: LoopNotifier | None = None,
) -> LoopDay:
    """One day of the loop, every step in order (:data:`~churnops.contracts.loop.LOOP_STEPS`):
    refresh the online store, batch-score the active customers, drift and performance reports,
    the retraining check, the retrain and its gates, the promotion (or the gates' refusal), the
    log's compaction, the alert. Idempotent per day: the steps an earlier run recorded are
    replayed from their records, never run again (a finished day changes nothing). A step that
    was due and could not complete ends the day there (``failed_step``); ValueError for a day
    whose first instant lies ahead of the clock."""
    problem = loop_day_problem(day=day, clock=settings.clock)
    if problem is not None:
        raise ValueError(problem)
    done: list[LoopStepResult] = []
    for step in LOOP_STEPS:
        try:
            done.append(
                run_loop_step(
                    settings=settings,
                    day=day,
                    step=step,
                    policy=policy,
                    gate_policy=gate_policy,
                    notifier=notifier,
                )
            )
        except LoopStepError as error:
            return _push_loop(
                settings,
                LoopDay(
                    model_name=settings.model_name,
                    day=day,
                    now=loop_moment(day),
                    steps=tuple(done),
                    failed_step=step,
                    error=str(error),
                ),
            )
    return _push_loop(
        settings, LoopDay(model_name=settings.model_name, day=day, now=loop_moment(day), steps=tuple(done))
    )


def _push_loop(settings: Settings, day: LoopDay) -> LoopDay:
    """Push the day's outcome to the Pushgateway when one is configured (Grafana's loop panels:
    last run, decision, Production version over time); the day unchanged."""
    if not settings.pushgateway_url:
        return day
    from monitoring.prometheus import push_loop_metrics

    decided, promoted = day.step(LoopStep.DECIDE), day.step(LoopStep.PROMOTE)
    moved = (
        promoted is not None
        and promoted.status == StepStatus.DONE
        and bool(promoted.detail.get("production"))
    )
    production: str | None
    if promoted is not None and promoted.detail.get("production_version") is not None:
        production = str(promoted.detail["production_version"])
    else:  # a day that stopped early may have a registry problem: read it only after a full day
        production = _production_version(settings) if day.complete else None
    push_loop_metrics(
        gateway=settings.pushgateway_url,
        model_name=settings.model_name,
        moment=day.now.timestamp(),
        complete=day.complete,
        retrain_fired=None if decided is None else bool(decided.detail.get("fired")),
        promoted=moved,
        production_version=production,
    )
    return day


StepOutcome = tuple[StepStatus, dict[str, Any]]


def _production_version(settings: Settings) -> str | None:
    from churnops.wiring import model_source

    ref = model_source(settings).production()
    return None if ref is None else str(ref.version)


def _step_features(*, settings: Settings, now: datetime, **_: Any) -> StepOutcome:
    from churnops.features.materialize import RemovalRefused, materialize
    from churnops.wiring import feature_store

    try:
        result = materialize(
            store=feature_store(settings), end=now, max_removed_share=settings.materialize_max_removed_share
        )
    except RemovalRefused as error:
        raise LoopStepError(
            LoopStep.FEATURES, f"{error} (`churnops features materialize --force` when meant)"
        ) from None
    return StepStatus.DONE, {
        "end": result.end.isoformat(),
        "writers": dict(result.writers),
        "removed": dict(result.removed),
    }


def _step_score(*, settings: Settings, now: datetime, **_: Any) -> StepOutcome:
    from churnops.scoring.batch import BatchScoringError

    if _production_version(settings) is None:
        return StepStatus.SKIPPED, {"reason": "no Production version to score with"}
    try:
        scores = score_production(settings=settings, as_of=now)
    except BatchScoringError as error:
        raise LoopStepError(LoopStep.SCORE, str(error)) from None
    return StepStatus.DONE, scores.to_json()


def monitor_window(now: datetime) -> tuple[datetime, datetime]:
    """The loop day's monitoring window: the month before its moment, the day's own batch scores
    (stamped with it) included, nothing after it (a rerun or a backfill judges the same rows)."""
    end = now + timedelta(microseconds=1)
    return end - timedelta(days=MONITOR_DAYS), end


def _step_monitor(*, settings: Settings, now: datetime, **_: Any) -> StepOutcome:
    version = _production_version(settings)
    if version is None:
        return StepStatus.SKIPPED, {"reason": "no Production version to monitor"}
    detail: dict[str, Any] = {"version": version}
    start, end = monitor_window(now)  # the day's month, never traffic after the day began
    try:
        drift, _pushed = drift_report(settings=settings, version=version, start=start, end=end, as_of=now)
    except ValueError as error:  # no traffic of the version: the check still runs (schedule, cap)
        logger.warning("loop %s: no drift report: %s", now.date(), error, exc_info=True)
        detail["drift"] = {"status": None, "reason": str(error)}
    else:
        detail["drift"] = {"status": drift.status.value, "report": drift.report_html}
    try:
        report, _pushed = performance_report(
            settings=settings,
            start=start,
            end=end,
            days=MONITOR_DAYS,
            as_of=now,
            period="week",
            horizon=LABEL_HORIZON,
            push_gateway=None,
        )
    except ValueError as error:
        logger.warning("loop %s: no performance report: %s", now.date(), error, exc_info=True)
        detail["performance"] = {"matured": None, "reason": str(error)}
    else:
        detail["performance"] = {"scored": report.scored, "matured": report.matured}
    return StepStatus.DONE, detail


def _step_decide(*, settings: Settings, now: datetime, policy: RetrainPolicy, **_: Any) -> StepOutcome:
    record = check_retrain(settings=settings, policy=policy, now=now)
    pending = pending_retrain(settings=settings)
    return StepStatus.DONE, {
        "decision_id": record.id,
        "fired": record.fired,
        "trigger": None if record.trigger is None else record.trigger.value,
        "suppressed_by": record.suppressed_by,
        "retrain_decision": None if pending is None else pending.id,
    }


def _step_retrain(
    *,
    settings: Settings,
    now: datetime,
    policy: RetrainPolicy,
    gate_policy: Path | None,
    earlier: Mapping[str, Mapping[str, Any]],
    **_: Any,
) -> StepOutcome:
    from churnops.contracts.decisions import PENDING
    from churnops.retraining.orders import DecisionRefusedError
    from churnops.retraining.run import RetrainBusyError, RetrainLeaseLostError
    from churnops.wiring import open_registry
    from registry_ext import get_decision

    decision_id = earlier[LoopStep.DECIDE].get("retrain_decision")
    if decision_id is None:
        return StepStatus.SKIPPED, {"reason": "no retrain due"}
    with open_registry(settings, write=False) as registry:
        decision = get_decision(registry.engine, decision_id=int(decision_id))
    if decision is not None and decision.state not in PENDING:  # another run (the sensor) finished it
        registered = decision.last_detail(DecisionState.REGISTERED).get("version")
        return StepStatus.DONE, {
            "decision_id": decision.id,
            "state": decision.state.value,
            "version": registered,
            "message": f"decision {decision.id} was {decision.state.value} by another run",
        }
    try:
        result = retrain(
            settings=settings,
            policy=policy,
            gate_policy=gate_policy,
            forced=None,
            now=now,
            decision_id=int(decision_id),
            promote=False,
        )
    except (RetrainBusyError, RetrainLeaseLostError, DecisionRefusedError) as error:
        raise LoopStepError(LoopStep.RETRAIN, str(error)) from None
    return StepStatus.DONE, {
        "decision_id": result.decision_id,
        "state": result.state.value,
        "version": result.version,
        "message": result.message,
    }


def _step_promote(
    *,
    settings: Settings,
    now: datetime,
    policy: RetrainPolicy,
    earlier: Mapping[str, Mapping[str, Any]],
    **_: Any,
) -> StepOutcome:
    from churnops.retraining.run import RetrainBusyError

    retrained = earlier[LoopStep.RETRAIN]
    if "decision_id" not in retrained:
        return StepStatus.SKIPPED, {"reason": "no retrain"}
    state = retrained.get("state")
    if retrained.get("version") is None:
        why = (
            "the gates refused the challenger"
            if state == DecisionState.REFUSED
            else f"the retrain ended {state}: {retrained.get('message')}"
        )
        return StepStatus.SKIPPED, {
            "reason": f"{why}: Production unchanged",
            "decision_id": retrained["decision_id"],
            "state": state,
        }
    if state != DecisionState.REGISTERED:  # another run (the sensor) finished this decision
        production = _production_version(settings)
        return StepStatus.DONE, {
            "decision_id": retrained["decision_id"],
            "version": retrained["version"],
            "production": production == str(retrained["version"]),
            "production_version": production,
            "state": state,
        }
    try:
        moved = promote_retrained(
            settings=settings, policy=policy, decision_id=int(retrained["decision_id"]), now=now
        )
    except (RetrainBusyError, ValueError) as error:  # busy, or finished elsewhere meanwhile
        raise LoopStepError(LoopStep.PROMOTE, str(error)) from None
    return StepStatus.DONE, {
        "decision_id": retrained["decision_id"],
        "version": retrained["version"],
        "production": moved,
        "production_version": _production_version(settings),
    }


def _step_compact(*, settings: Settings, day: date, **_: Any) -> StepOutcome:
    try:
        done = compact_log(settings=settings, before=day)
    except ValueError as error:  # the SQL log: one table, no files
        return StepStatus.SKIPPED, {"reason": str(error)}
    doc = done.to_dict()
    return StepStatus.DONE, {
        "partitions": done.partitions,
        "compacted": len(done.compacted),
        "files_in": doc["files_in"],
    }


def _step_alert(
    *, settings: Settings, notifier: LoopNotifier | None, so_far: LoopDay, **_: Any
) -> StepOutcome:
    from monitoring.alerts import AlertDeliveryError

    if notifier is None:  # the settings' own: Alertmanager when configured, else logged only
        from churnops.wiring import loop_notifier

        notifier = DayEvents(notifier=loop_notifier(settings))
    try:
        sent = notifier.notify(day=so_far)
    except AlertDeliveryError as error:
        raise LoopStepError(LoopStep.ALERT, str(error)) from None
    return StepStatus.DONE, {"notifier": type(notifier).__name__, **dict(sent or {})}


def loop_events(*, day: LoopDay) -> list[LoopEvent]:
    """What a person hears of one day: the drift trigger fired, a retrain the gates refused,
    a promotion. A quiet day has none. The window is the monitored month before the day."""
    from monitoring.alerts import LoopEvent, LoopEventKind

    def detail(step: LoopStep) -> Mapping[str, Any]:
        found = day.step(step)
        return {} if found is None else found.detail

    monitored, decided = detail(LoopStep.MONITOR), detail(LoopStep.DECIDE)
    retrained, promoted = detail(LoopStep.RETRAIN), day.step(LoopStep.PROMOTE)
    production = monitored.get("version")
    start, end = monitor_window(day.now)
    report = (monitored.get("drift") or {}).get("report")
    events: list[LoopEvent] = []

    def event(kind: LoopEventKind, version: Any, reason: str) -> None:
        if version is not None:
            events.append(
                LoopEvent(
                    kind=kind,
                    model=day.model_name,
                    version=str(version),
                    window_start=start,
                    window_end=end,
                    reason=reason,
                    at=day.now,
                )
            )

    if decided.get("fired") and decided.get("trigger") in (Trigger.DRIFT.value, Trigger.PERFORMANCE.value):
        where = f"; report {report}" if report else ""
        event(
            LoopEventKind.DRIFT_FIRED,
            production,
            f"{decided['trigger']} trigger fired (decision {decided.get('decision_id')}){where}",
        )
    if (
        promoted is not None
        and promoted.status == StepStatus.SKIPPED
        and promoted.detail.get("state") == DecisionState.REFUSED
    ):
        event(
            LoopEventKind.RETRAIN_REFUSED,
            production,
            f"decision {promoted.detail['decision_id']}: "
            f"{retrained.get('message') or promoted.detail['reason']}",
        )
    if promoted is not None and promoted.status == StepStatus.DONE and promoted.detail.get("production"):
        event(
            LoopEventKind.PROMOTED,
            promoted.detail.get("version"),
            f"retrained on decision {promoted.detail['decision_id']} and passed its gates",
        )
    return events


@dataclass(frozen=True)
class DayEvents:
    """The loop's notifier over monitoring's: each of the day's :func:`loop_events`, sent once
    (a replayed alert step is not re-run, so a rerun of the day sends nothing)."""

    notifier: Notifier

    def notify(self, *, day: LoopDay) -> Mapping[str, Any]:
        results = [self.notifier.notify(event) for event in loop_events(day=day)]
        return {"events": [r.event.kind.value for r in results], "sent": sum(r.sent for r in results)}


_NEEDS = {LoopStep.RETRAIN: LoopStep.DECIDE, LoopStep.PROMOTE: LoopStep.RETRAIN}
"""The step whose record a step reads (the decision to act on, the version to promote)."""

_LOOP_STEPS: dict[LoopStep, Callable[..., StepOutcome]] = {
    LoopStep.FEATURES: _step_features,
    LoopStep.SCORE: _step_score,
    LoopStep.MONITOR: _step_monitor,
    LoopStep.DECIDE: _step_decide,
    LoopStep.RETRAIN: _step_retrain,
    LoopStep.PROMOTE: _step_promote,
    LoopStep.COMPACT: _step_compact,
    LoopStep.ALERT: _step_alert,
}
