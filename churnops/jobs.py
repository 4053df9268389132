"""The loop's steps at the Settings level: log compaction, a drift report, a performance report,
a retraining check, a retrain.

``churnops log compact``, ``churnops monitor drift|performance``, ``churnops retrain check|run``,
the orchestrator's ops and sensor
(``churnops.orchestration``) and the policy backtest (``churnops simulate``) all call these, so a
step behaves the same whoever runs it. Each turns Settings into clients through
:mod:`churnops.wiring` and hands built objects to the components; none prints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    from monitoring.baseline import TrainingWindow as FittedWindow
    from monitoring.drift import DriftResult
    from monitoring.performance import PerformanceReport
    from registry_ext import DecisionRecord

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
