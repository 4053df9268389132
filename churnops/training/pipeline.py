"""`train`: a FeatureService's point-in-time training set -> candidates -> gates -> version.

Steps (one MLflow run, started through Feast's MLflow integration so the retrieval inside it
is tagged with Feast's lineage: ``feast.feature_service``, ``feast.feature_refs``, ...):

1. labels from the label source are the entity frame; it is checked before any run starts;
2. the training set is built for the FeatureService and split (out-of-time when the labels
   span at least three times, else seeded stratified random; see :mod:`split`);
3. every candidate family is fitted on the training split and the best validation ROC-AUC
   wins. **No refit**: the winner is the model fitted on the training split only, so the model
   evaluated on the test split is byte for byte the one logged and registered, and the threshold
   chosen on validation stays calibrated to it. (Refitting on train+validation would ship a model
   nobody evaluated.)
4. validation and test metrics (overall and per slice), the Production version scored on the
   same test rows, the paired-bootstrap interval of the candidate's gain on those rows (the
   policy's level, resamples and seed: deterministic), and the gate report;
5. everything logged; a passing candidate is registered (``registry.register``), a failing one
   leaves its run tagged ``churnops.gates=failed`` with ``gate_results.json`` and no version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from churnops.contracts.artifacts import HOLDOUT_ARTIFACT, MODEL_PATH, REFERENCE_ARTIFACT
from churnops.contracts.clock import current_time, wall_clock
from churnops.contracts.columns import EVENT_TS, FEATURE_SERVICE, JOIN_KEY, LABEL, SCORE
from churnops.contracts.mlflow_keys import (
    EXPERIMENT_KIND_TAG,
    GIT_COMMIT_TAG,
    MODEL_TRAINING_KIND,
    PRODUCTION_TEST_PREFIX,
    RETRAIN_TRIGGER_TAG,
    RUN_CODE_VERSION,
    RUN_COMPARED_WITH,
    RUN_ERROR,
    RUN_FEATURE_SERVICE,
    RUN_GATE_POLICY,
    RUN_GATES,
    RUN_GATES_FAILED,
    RUN_MODEL_FAMILY,
    RUN_MODEL_SHA256,
    RUN_REGISTRATION,
    RUN_SPLIT_REASON,
    RUN_SPLIT_STRATEGY,
    RUN_TRAINING_FRAME,
    RUN_VERSION,
    TEST_PREFIX,
    THRESHOLD_METRIC,
    VALIDATION_PREFIX,
    VERSION_CODE_VERSION_TAG,
    VERSION_GATE_POLICY_TAG,
    VERSION_MODEL_FAMILY_TAG,
    VERSION_SPLIT_STRATEGY_TAG,
    VERSION_TRAINING_FRAME_TAG,
    VERSION_TRIGGER_TAG,
    required,
    window_param,
)
from churnops.training.candidates import FAMILIES, FittedCandidate, fit_candidate, score
from churnops.training.errors import TrainingDataError, TrainingError
from churnops.training.frame import check_class_balance, feature_columns, labels, model_input
from churnops.training.gain import gain_interval
from churnops.training.gates import GatePolicy, GateReport, MetricsSnapshot, evaluate_gates
from churnops.training.metrics import SplitMetrics, choose_threshold, evaluate_split
from churnops.training.mlflow_logging import (
    ENTITY_DF_ARTIFACT,
    GATE_RESULTS_ARTIFACT,
    METRICS_ARTIFACT,
    CodeVersion,
    code_version,
    frame_sha256,
    log_json,
    log_model,
    log_parquet,
)
from churnops.training.split import Split, SplitPolicy, Window, split_training_set

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient

DEFAULT_EXPERIMENT = "churn"


class VersionRecord(Protocol):
    """What training reads of a registered version (registry_ext.ModelRecord has more)."""

    @property
    def version(self) -> int: ...

    @property
    def metrics(self) -> dict[str, float]: ...


class Registry(Protocol):
    """The part of registry_ext.ModelRegistry that training calls (docs/registry-api.md)."""

    def production(self) -> VersionRecord | None: ...

    def load_model(self, version: int) -> Any: ...

    def register(
        self,
        *,
        run_id: str,
        artifact_path: str = ...,
        sha256: str,
        feature_service: str,
        metrics: Mapping[str, float],
        tags: Mapping[str, str] | None = ...,
        gate_results: Any = ...,
        actor: str | None = ...,
        trigger: str = ...,
    ) -> Any: ...


@dataclass(frozen=True)
class TrainOptions:
    feature_service: str = FEATURE_SERVICE
    experiment: str = DEFAULT_EXPERIMENT
    trigger: str = "manual"
    actor: str | None = None
    families: tuple[str, ...] = tuple(FAMILIES)
    split: SplitPolicy = field(default_factory=SplitPolicy)
    reference_rows: int = 100_000
    labels_start: datetime | None = None
    labels_end: datetime | None = None
    version_tags: Mapping[str, str] = field(default_factory=dict)
    """Extra tags for the registered version and the run (e.g. retraining provenance)."""
    progress: Callable[[str], None] | None = field(default=None, compare=False)
    """Called with a short description as each long step starts (a CLI shows it; nothing prints here)."""

    def step(self, description: str) -> None:
        if self.progress is not None:
            self.progress(description)


@dataclass(frozen=True)
class CandidateSummary:
    family: str
    validation_roc_auc: float
    chosen: bool


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    experiment_id: str
    feature_service: str
    family: str
    candidates: tuple[CandidateSummary, ...]
    threshold: float
    split_strategy: str
    split_reason: str
    windows: dict[str, Window]
    validation: SplitMetrics
    test: SplitMetrics
    production_version: int | None
    production_test: SplitMetrics | None
    gates: GateReport
    sha256: str
    training_frame_sha256: str
    code_version: CodeVersion
    version: int | None
    registration: str

    def registered_metrics(self) -> dict[str, float]:
        return registered_metrics(validation=self.validation, test=self.test, threshold=self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "feature_service": self.feature_service,
            "family": self.family,
            "candidates": [vars(c) for c in self.candidates],
            "threshold": self.threshold,
            "split": {
                "strategy": self.split_strategy,
                "reason": self.split_reason,
                "windows": {
                    k: {
                        "start": w.start.isoformat(),
                        "end": w.end.isoformat(),
                        "rows": w.rows,
                        "positives": w.positives,
                    }
                    for k, w in self.windows.items()
                },
            },
            "validation": self.validation.to_dict(),
            "test": self.test.to_dict(),
            "production_version": self.production_version,
            "production_test": None if self.production_test is None else self.production_test.to_dict(),
            "gates": self.gates.to_dict(),
            "sha256": self.sha256,
            "training_frame_sha256": self.training_frame_sha256,
            "code_version": self.code_version.label(),
            "version": self.version,
            "registration": self.registration,
        }


def registered_metrics(*, validation: SplitMetrics, test: SplitMetrics, threshold: float) -> dict[str, float]:
    return {**validation.flat(VALIDATION_PREFIX), **test.flat(TEST_PREFIX), THRESHOLD_METRIC: threshold}


def _service_features(store: FeatureStore, name: str) -> list[str]:
    from feast.errors import FeatureServiceNotFoundException

    try:
        service = store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        known = sorted(s.name for s in store.list_feature_services())
        raise TrainingError(
            f"feature service {name!r} is not registered in the Feast repo "
            f"(registered: {', '.join(known) or 'none'}); apply the feature definitions first"
        ) from None
    return [f.name for p in service.feature_view_projections for f in p.features]


def _experiment_id(client: MlflowClient, *, name: str, artifact_location: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # made before the kind was set, or by hand
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        return str(experiment.experiment_id)
    from mlflow.exceptions import MlflowException

    location = None if artifact_location is None else f"{artifact_location.rstrip('/')}/{name}"
    try:
        return str(
            client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            )
        )
    except MlflowException as error:
        # Another training run created it since we looked (concurrent first runs on one store).
        raced = client.get_experiment_by_name(name)
        if error.error_code != "RESOURCE_ALREADY_EXISTS" or raced is None:
            raise
        return str(raced.experiment_id)


def run_name(*, feature_service: str, trigger: str, now: datetime | None = None) -> str:
    """A distinct, readable run name: ``train-churn_v1-manual-20260112-101500-3fa2``."""
    import uuid
    from datetime import UTC

    when = current_time(now).astimezone(UTC)
    return f"train-{feature_service}-{trigger}-{when:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def _log_evaluation(
    *, client: MlflowClient, run_id: str, holdout: pd.DataFrame, entity_df: pd.DataFrame, y: Any, scores: Any
) -> None:
    """The evaluation images and the datasets (MLflow's Datasets panel) of the run: the test rows
    (context ``evaluation``) and the labelled entity frame the training set was built from."""
    import warnings

    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    from churnops.training.plots import PLOT_DIR, evaluation_figures

    for name, figure in evaluation_figures(y_true=y, scores=scores).items():
        client.log_figure(run_id, figure, f"{PLOT_DIR}/{name}.png")
    artifact_uri = client.get_run(run_id).info.artifact_uri.rstrip("/")
    inputs = []
    for frame, name, context, path in (
        (holdout, "holdout", "evaluation", HOLDOUT_ARTIFACT),
        (entity_df, "entity_df", "training", ENTITY_DF_ARTIFACT),
    ):
        with warnings.catch_warnings():
            # A file:// URI matches MLflow's local artifact source twice; it picks that one and says so.
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            # Labels and counts are integers and never missing: the schema hint does not apply.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            dataset = from_pandas(
                frame,
                source=f"{artifact_uri}/{path}",
                targets=LABEL if LABEL in frame.columns else None,
                name=name,
            )
            entity = dataset._to_mlflow_entity()  # the schema (and its hint) is computed here
        inputs.append(DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)]))
    log_dataset_inputs(client=client, run_id=run_id, inputs=inputs)


DATASET_ATTEMPTS = 5


def log_dataset_inputs(*, client: MlflowClient, run_id: str, inputs: list[Any]) -> None:
    """``client.log_inputs``, again when another run inserted the same dataset at the same moment.

    MLflow looks a dataset up by (experiment, name, digest) and inserts it when absent, without a
    lock: concurrent trainings on the same data (same digest) collide on the datasets table's
    unique key (``UNIQUE constraint failed: datasets...`` on SQLite, ``duplicate key`` on
    PostgreSQL). The losing transaction is rolled back whole; the retry finds the winner's row
    and links it to this run.
    """
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(1, DATASET_ATTEMPTS + 1):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except MlflowException as error:
            if attempt == DATASET_ATTEMPTS or not _is_unique_violation(error):
                raise
            _log.warning(
                "run %s: another run logged the same dataset at the same moment; logging it again "
                "(attempt %d of %d): %s",
                run_id,
                attempt + 1,
                DATASET_ATTEMPTS,
                str(error).splitlines()[0][:200],
            )
            time.sleep(0.05 * attempt)  # back off: the other run's transaction is committing


def _is_unique_violation(error: Exception) -> bool:
    """A unique-key violation of the backend store (in-process SQLAlchemy, or its text via REST)."""
    from sqlalchemy.exc import IntegrityError

    text = str(error)
    return (
        isinstance(error.__cause__, IntegrityError)
        or "UNIQUE constraint failed" in text
        or "duplicate key value violates unique constraint" in text
    )


def _check_tracking(store: FeatureStore, client: MlflowClient) -> None:
    if store.mlflow is None:
        raise TrainingError(
            "Feast's MLflow integration is disabled in the feature store config (mlflow.enabled); "
            "training needs it for the feature lineage tags"
        )
    feast_uri = store.config.mlflow.get_tracking_uri()
    if feast_uri != client.tracking_uri:
        raise TrainingError(
            f"Feast logs lineage to {feast_uri!r} but the MLflow client tracks {client.tracking_uri!r}; "
            "they must be the same tracking URI"
        )


def _window_params(windows: Mapping[str, Window]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, w in windows.items():
        out[window_param(name, "start")] = w.start.isoformat()
        out[window_param(name, "end")] = w.end.isoformat()
    return out


def _current_production(registry: Registry) -> Any:
    """The Production record, or None (also for a model never registered: the registry says None)."""
    return registry.production()


@dataclass(frozen=True)
class _ProductionOnTest:
    version: int
    metrics: SplitMetrics
    scores: Any
    """Its scores on the candidate's test rows, row for row (the gain's paired bootstrap)."""


def _production_metrics(
    *, registry: Registry, split: Split, columns: list[Any], policy: GatePolicy
) -> _ProductionOnTest | None:
    record = _current_production(registry)
    if record is None:
        return None
    version = int(record.version)
    try:
        model = registry.load_model(version)
        x = model_input(split.test, columns=columns)
        wanted = getattr(model, "feature_names_in_", None)
        if wanted is not None:
            missing = [c for c in wanted if c not in x.columns]
            if missing:
                raise TrainingError(f"it needs feature(s) {missing} that the candidate's rows lack")
            x = x[list(wanted)]
        scores = score(model, x)
        where = f"production version {version}'s metrics"
        threshold = float(required(record.metrics, THRESHOLD_METRIC, where=where))
        metrics = evaluate_split(
            frame=split.test,
            y_true=labels(split.test),
            scores=scores,
            threshold=threshold,
            slices=policy.slice_specs(),
            min_slice_rows=policy.min_slice_rows,
        )
    except Exception as error:
        raise TrainingError(
            f"could not score the Production version {version} on the candidate's test rows: {error}"
        ) from error
    return _ProductionOnTest(version=version, metrics=metrics, scores=scores)


def train(
    *,
    store: FeatureStore,
    client: MlflowClient,
    registry: Registry | None,
    sources_dir: Path,
    policy: GatePolicy,
    options: TrainOptions | None = None,
    artifact_location: str | None = None,
) -> TrainResult:
    """Train, evaluate and gate a churn model on ``options.feature_service``.

    ``registry=None`` is a dry run: no Production comparison (relative rules are skipped) and no
    registration, whatever the gates say. ``artifact_location`` is used when the experiment has
    to be created (``<artifact_location>/<experiment>``).
    """
    from churnops.features.training_set import build_training_set, label_entity_frame

    options = options or TrainOptions()
    unknown = [f for f in options.families if f not in FAMILIES]
    if unknown or not options.families:
        raise TrainingError(f"unknown or no model families {unknown}; known: {', '.join(FAMILIES)}")
    _check_tracking(store, client)
    columns = feature_columns(_service_features(store, options.feature_service))
    entity_df = label_entity_frame(
        sources_dir=sources_dir, start=options.labels_start, end=options.labels_end
    )
    if entity_df.empty:
        raise TrainingDataError(
            f"the label source under {sources_dir} has no labels; ingest or generate data first"
        )
    check_class_balance(
        labels(entity_df),
        what="the label source",
        min_rows=options.split.min_rows,
        min_per_class=options.split.min_per_class,
    )
    experiment_id = _experiment_id(client, name=options.experiment, artifact_location=artifact_location)
    version_info = code_version()
    tags = {
        RUN_FEATURE_SERVICE: options.feature_service,
        RETRAIN_TRIGGER_TAG: options.trigger,
        RUN_CODE_VERSION: version_info.label(),
        RUN_GATE_POLICY: f"{policy.name}@{policy.digest()}",
    }
    tags.update(options.version_tags)
    if version_info.git_commit:
        tags[GIT_COMMIT_TAG] = version_info.git_commit

    with store.mlflow.start_run(
        run_name=run_name(feature_service=options.feature_service, trigger=options.trigger),
        experiment_id=experiment_id,
        tags=tags,
    ) as run:
        run_id = run.info.run_id
        try:
            result = _train_in_run(
                store=store,
                client=client,
                registry=registry,
                run_id=run_id,
                experiment_id=experiment_id,
                entity_df=entity_df,
                columns=columns,
                policy=policy,
                options=options,
                version_info=version_info,
                build_training_set=build_training_set,
            )
        except Exception as error:
            client.set_tag(run_id, RUN_ERROR, f"{type(error).__name__}: {error}"[:4900])
            raise
    return _register(client=client, registry=registry, result=result, options=options)


def _train_in_run(
    *,
    store: FeatureStore,
    client: MlflowClient,
    registry: Registry | None,
    run_id: str,
    experiment_id: str,
    entity_df: pd.DataFrame,
    columns: list[Any],
    policy: GatePolicy,
    options: TrainOptions,
    version_info: CodeVersion,
    build_training_set: Any,
) -> TrainResult:
    # The retrieval runs inside the active run: Feast tags it with the service and feature refs.
    options.step(f"building the point-in-time training set ({len(entity_df):,} labels)")
    frame = build_training_set(store=store, entity_df=entity_df, feature_service=options.feature_service)
    log_parquet(
        client=client, run_id=run_id, frame=entity_df[[JOIN_KEY, EVENT_TS, LABEL]], path=ENTITY_DF_ARTIFACT
    )
    split = split_training_set(frame=frame, policy=options.split)
    windows = split.windows()
    names = [c.name for c in columns]
    x_train, y_train = model_input(split.train, columns=columns), labels(split.train)
    x_val, y_val = model_input(split.validation, columns=columns), labels(split.validation)
    x_test, y_test = model_input(split.test, columns=columns), labels(split.test)

    fitted: list[tuple[FittedCandidate, float]] = []
    for family in options.families:
        options.step(f"fitting {family} on {len(x_train):,} rows")
        candidate = fit_candidate(
            family=family, columns=columns, x=x_train, y=y_train, seed=options.split.seed
        )
        val_auc = evaluate_split(
            frame=split.validation, y_true=y_val, scores=score(candidate.pipeline, x_val), threshold=0.5
        ).overall["roc_auc"]
        fitted.append((candidate, val_auc))
    best, _ = max(fitted, key=lambda pair: pair[1])  # first family wins a tie
    val_scores = score(best.pipeline, x_val)
    threshold = choose_threshold(y_val, val_scores)
    slices, min_rows = policy.slice_specs(), policy.min_slice_rows
    validation = evaluate_split(
        frame=split.validation,
        y_true=y_val,
        scores=val_scores,
        threshold=threshold,
        slices=slices,
        min_slice_rows=min_rows,
    )
    test_scores = score(best.pipeline, x_test)
    test = evaluate_split(
        frame=split.test,
        y_true=y_test,
        scores=test_scores,
        threshold=threshold,
        slices=slices,
        min_slice_rows=min_rows,
    )
    options.step("scoring the Production version on the same test rows")
    production = (
        None
        if registry is None
        else _production_metrics(registry=registry, split=split, columns=columns, policy=policy)
    )
    production_version = None if production is None else production.version
    production_test = None if production is None else production.metrics
    gain = None
    if production is not None:
        rel = policy.relative
        options.step(f"paired bootstrap of the {rel.metric} gain ({rel.resamples:,} resamples)")
        gain = gain_interval(
            labels=y_test,
            candidate_scores=test_scores,
            production_scores=production.scores,
            metric=rel.metric,
            level=rel.interval_level,
            resamples=rel.resamples,
            seed=rel.seed,
        )
    report = evaluate_gates(
        candidate=MetricsSnapshot(overall=test.overall, slices=test.slices),
        production=None
        if production_test is None
        else MetricsSnapshot(overall=production_test.overall, slices=production_test.slices),
        policy=policy,
        trigger=options.trigger,
        gain=gain,
        production_version=production_version,
    )

    training_hash = frame_sha256(frame)
    params: dict[str, Any] = {
        "feature_service": options.feature_service,
        "features": ",".join(names),
        "families": ",".join(options.families),
        "model_family": best.family,
        "split_strategy": split.strategy,
        "seed": options.split.seed,
        "validation_fraction": options.split.validation_fraction,
        "test_fraction": options.split.test_fraction,
        "threshold_rule": "max F1 on validation",
        "refit": "none (fitted on the training split only)",
        **_window_params(windows),
        **{f"model.{k}": v for k, v in best.params.items()},
    }
    client.log_batch(run_id, params=_params(params))
    metrics = {
        **registered_metrics(validation=validation, test=test, threshold=threshold),
        "rows_total": float(len(frame)),
        **{f"rows_{k}": float(w.rows) for k, w in windows.items()},
        **{f"positives_{k}": float(w.positives) for k, w in windows.items()},
        **{f"candidate_{c.family}_val_roc_auc": auc for c, auc in fitted},
    }
    if production_test is not None:
        metrics.update(production_test.flat(PRODUCTION_TEST_PREFIX))
    _log_metrics(client, run_id, metrics)
    for key, value in {
        RUN_MODEL_FAMILY: best.family,
        RUN_SPLIT_STRATEGY: split.strategy,
        RUN_SPLIT_REASON: split.reason,
        RUN_TRAINING_FRAME: training_hash,
        RUN_COMPARED_WITH: str(production_version) if production_version else "none",
    }.items():
        client.set_tag(run_id, key, value)

    raw = [c for c in (JOIN_KEY, EVENT_TS, *names, LABEL) if c in split.test.columns]
    # The holdout keeps the chosen model's score: concept-drift monitoring computes the
    # holdout's randomized PIT from it without reloading the model.
    holdout = split.test[raw].copy()
    holdout[SCORE] = test_scores
    log_parquet(client=client, run_id=run_id, frame=holdout.reset_index(drop=True), path=HOLDOUT_ARTIFACT)
    reference = split.train[raw].copy()
    reference[SCORE] = score(best.pipeline, x_train)
    if len(reference) > options.reference_rows:
        reference = reference.sample(n=options.reference_rows, random_state=options.split.seed)
    log_parquet(client=client, run_id=run_id, frame=reference.reset_index(drop=True), path=REFERENCE_ARTIFACT)
    options.step("logging evaluation plots, datasets and the model to MLflow")
    _log_evaluation(
        client=client,
        run_id=run_id,
        holdout=holdout.drop(columns=[SCORE]),
        entity_df=entity_df[[JOIN_KEY, EVENT_TS, LABEL]],
        y=y_test,
        scores=test_scores,
    )
    log_json(
        client=client,
        run_id=run_id,
        data={
            "validation": validation.to_dict(),
            "test": test.to_dict(),
            "production_test": None if production_test is None else production_test.to_dict(),
            "threshold": threshold,
        },
        path=METRICS_ARTIFACT,
    )
    log_json(client=client, run_id=run_id, data=report.to_dict(), path=GATE_RESULTS_ARTIFACT)
    logged = log_model(
        client=client, run_id=run_id, model=best.pipeline, columns=columns, input_example=x_train.head(5)
    )
    client.set_tag(run_id, RUN_MODEL_SHA256, logged.sha256)
    client.set_tag(run_id, RUN_GATES, "passed" if report.passed else "failed")
    failed = ",".join(r.rule for r in report.failures)
    client.set_tag(run_id, RUN_GATES_FAILED, failed[:4900] or "none")

    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        feature_service=options.feature_service,
        family=best.family,
        candidates=tuple(CandidateSummary(c.family, auc, c is best) for c, auc in fitted),
        threshold=threshold,
        split_strategy=split.strategy,
        split_reason=split.reason,
        windows=windows,
        validation=validation,
        test=test,
        production_version=production_version,
        production_test=production_test,
        gates=report,
        sha256=logged.sha256,
        training_frame_sha256=training_hash,
        code_version=version_info,
        version=None,
        registration="pending",
    )


def _params(params: Mapping[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(v)[:6000]) for k, v in params.items()]


def _log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(wall_clock().timestamp() * 1000)  # when it was logged, in MLflow's own terms
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for start in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[start : start + 500])


def _register(
    *, client: MlflowClient, registry: Registry | None, result: TrainResult, options: TrainOptions
) -> TrainResult:
    from dataclasses import replace

    if not result.gates.passed:
        return replace(result, registration=f"no new version: {result.gates.summary()}")
    if registry is None:
        return replace(result, registration="not registered: dry run (no registry)")
    tags = {
        VERSION_TRIGGER_TAG: options.trigger,
        VERSION_MODEL_FAMILY_TAG: result.family,
        VERSION_SPLIT_STRATEGY_TAG: result.split_strategy,
        VERSION_TRAINING_FRAME_TAG: result.training_frame_sha256,
        VERSION_CODE_VERSION_TAG: result.code_version.label(),
        VERSION_GATE_POLICY_TAG: f"{result.gates.policy}@{result.gates.policy_digest}",
        **options.version_tags,
    }
    try:
        options.step("registering the version")
        record = registry.register(
            run_id=result.run_id,
            artifact_path=MODEL_PATH,
            sha256=result.sha256,
            feature_service=result.feature_service,
            metrics=result.registered_metrics(),
            tags=tags,
            gate_results=result.gates.to_dict(),
            actor=options.actor,
            trigger=options.trigger,
        )
    except Exception as error:
        client.set_tag(result.run_id, RUN_REGISTRATION, f"failed: {error}"[:4900])
        raise
    version = int(record.version)
    client.set_tag(result.run_id, RUN_REGISTRATION, "registered")
    client.set_tag(result.run_id, RUN_VERSION, str(version))
    return replace(result, version=version, registration=f"registered as version {version}")
