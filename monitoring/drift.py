"""Drift of one model version over one window: data, prediction and concept drift plus data
quality, computed by Evidently with explicit ``ValueDrift`` metrics (not ``DataDriftPreset``:
2-3x slower) and returned as one :class:`DriftResult`.

- data drift: ``kl_div`` per feature, KL(reference || current);
- prediction drift: ``jensenshannon`` on the score;
- concept drift: ``ks`` on the randomized PIT of matured outcomes, current window vs the
  training holdout (:mod:`monitoring.concept`); the KS statistic D comes from scipy (Evidently
  reports only the p-value), the p-value from Evidently.

``import evidently`` costs 10+ s, so it happens inside the functions that need it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnops.contracts.columns import FEATURES, LABEL, SCORE
from churnops.contracts.monitoring_runs import (
    PART_CONCEPT_DRIFT,
    PART_DATA_DRIFT,
    PART_PERFORMANCE,
    SNAPSHOT_PART,
    snapshot_metadata,
    snapshot_tags,
)
from churnops.contracts.monitoring_terms import MonitoringCounts, ReportStatus, drifted_share, drifted_windows
from monitoring.concept import ConceptDecision, decide_concept, frame_pit
from monitoring.errors import MonitoringError
from monitoring.policy import DriftPolicy
from monitoring.quality import FeatureQuality, data_quality

DATA_METHOD = "kl_div"
PREDICTION_METHOD = "jensenshannon"
CONCEPT_METHOD = "ks"
PIT_COLUMN = "pit"
CATEGORICAL = tuple(c.name for c in FEATURES if c.kind in ("category", "flag"))
NUMERICAL = tuple(c.name for c in FEATURES if c.kind in ("int", "float"))
FEATURE_NAMES = tuple(c.name for c in FEATURES)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    score: float | None  # None: the feature has no non-null value on one side (see data_quality)
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class PredictionDrift:
    score: float | None
    threshold: float
    drifted: bool
    reference_mean: float | None
    current_mean: float | None


@dataclass(frozen=True)
class Performance:
    """The model on the window's matured labels, beside the same figures on the holdout."""

    rows: int
    positive_rate: float | None
    mean_score: float | None
    roc_auc: float | None
    brier: float | None
    holdout_roc_auc: float | None
    holdout_brier: float | None
    in_sample_excluded: int = 0
    """Matured rows left out because their snapshot lies inside the version's training window."""


@dataclass(frozen=True)
class DriftResult:
    """One drift report. ``to_json()`` is the contract; ``snapshot`` / ``concept_snapshot`` are
    the Evidently snapshots the HTML report and the workspace run are made from."""

    status: ReportStatus
    model_name: str
    model_version: str
    reference_rows: int
    reference_source_rows: int
    window_start: datetime
    window_end: datetime
    current_rows: int
    features: tuple[FeatureDrift, ...]
    prediction: PredictionDrift
    concept: ConceptDecision
    concept_threshold: float
    quality: tuple[FeatureQuality, ...]
    performance: Performance
    policy_name: str
    policy_digest: str
    report_html: str | None = None
    current_sampled_rows: int | None = None
    """How many of ``current_rows`` the statistics read (the policy's seeded sample); None: all."""
    matured_labels: int | None = None
    """Every matured label of the labels window (``performance`` reads them all, or a sample of
    them); None: the labelled frame given was all of them."""
    labels_start: datetime | None = None
    labels_end: datetime | None = None
    """The predictions whose matured labels are counted (the labels window)."""
    as_of: datetime | None = None
    """When those labels had to be known."""
    snapshot: Any = field(default=None, compare=False, repr=False)
    concept_snapshot: Any = field(default=None, compare=False, repr=False)
    performance_snapshot: Any = field(default=None, compare=False, repr=False)
    """Evidently's ROC-AUC of the matured labels (None: no labels, or one class only)."""

    @property
    def drifted_share(self) -> float:
        return drifted_share(None if f.score is None else f.drifted for f in self.features)

    def counts(self) -> MonitoringCounts:
        """The window in the monitoring vocabulary (churnops.contracts.monitoring_terms)."""
        return MonitoringCounts(
            model_version=self.model_version,
            matured_labels=self.performance.rows if self.matured_labels is None else self.matured_labels,
            as_of=self.as_of,
            labels_start=self.labels_start,
            labels_end=self.labels_end,
            drifted_share=self.drifted_share,
            drifted_windows=drifted_windows([self.status]),
            window_start=self.window_start,
            window_end=self.window_end,
        )

    def with_report_html(self, path: Path | str) -> DriftResult:
        return replace(self, report_html=str(path))

    def to_json(self) -> dict[str, Any]:
        """The JSON document (a dict of plain JSON types) that tests and users parse."""
        return {
            "status": self.status,
            "model": {"name": self.model_name, "version": self.model_version},
            "reference": {"rows": self.reference_rows, "source_rows": self.reference_source_rows},
            "current": {
                "start": self.window_start.isoformat(),
                "end": self.window_end.isoformat(),
                "rows": self.current_rows,
                "sampled_rows": self.current_sampled_rows,
            },
            "data_drift": {
                "method": DATA_METHOD,
                "drifted_share": self.drifted_share,
                "features": [
                    {"feature": f.feature, "score": f.score, "threshold": f.threshold, "drifted": f.drifted}
                    for f in self.features
                ],
            },
            "prediction_drift": {
                "method": PREDICTION_METHOD,
                "score": self.prediction.score,
                "threshold": self.prediction.threshold,
                "drifted": self.prediction.drifted,
            },
            "concept_drift": {
                "method": CONCEPT_METHOD,
                "status": self.concept.status,
                "statistic": self.concept.statistic,
                "p_value": self.concept.p_value,
                "threshold": self.concept_threshold,
                "drifted": self.concept.drifted,
                "labelled_rows": self.concept.labelled_rows,
            },
            "score_shift": {
                "reference_mean": self.prediction.reference_mean,
                "current_mean": self.prediction.current_mean,
                "mean_shift": None
                if self.prediction.reference_mean is None or self.prediction.current_mean is None
                else self.prediction.current_mean - self.prediction.reference_mean,
            },
            "performance": vars(self.performance),
            "data_quality": {"features": [q.to_json() for q in self.quality]},
            "policy": {"name": self.policy_name, "digest": self.policy_digest},
            "report_html": self.report_html,
            "counts": self.counts().to_json(),
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False)


def _require(frame: pd.DataFrame | None, *, name: str, columns: tuple[str, ...]) -> None:
    if frame is None:
        return
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MonitoringError(
            f"{name}: missing column(s) {missing}; expected the churn_v1 features and {SCORE!r}"
        )


def sample_reference(*, reference: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``rows`` rows (all rows when there are fewer): stable night to night."""
    if len(reference) <= rows:
        return reference
    return reference.sample(n=rows, random_state=seed)


def _evidently_frame(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Plain dtypes Evidently bins fast: categories as pandas ``category``, numbers as float64."""
    out: dict[str, pd.Series] = {}
    for name in columns:
        values = frame[name]
        if name in CATEGORICAL:
            out[name] = values.astype("category")  # nulls stay nulls; Evidently drops them
        else:
            out[name] = pd.to_numeric(values, errors="coerce").astype("float64")
    return pd.DataFrame(out).reset_index(drop=True)


def _metric_values(snapshot: Any) -> dict[tuple[str, str], float]:
    """``(column, method) -> value`` of the ``ValueDrift`` metrics of ``snapshot.dict()``."""
    values: dict[tuple[str, str], float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        values[(str(config.get("column")), str(config.get("method")))] = float(metric["value"])
    return values


def _usable(frame: pd.DataFrame, name: str) -> bool:
    values = frame[name]
    if name in NUMERICAL or name == SCORE:
        values = pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan)
    return bool(values.notna().any())


def run_value_drift(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    methods: Mapping[str, tuple[str, float]],
    timestamp: datetime | None = None,
    metadata: Mapping[str, str] | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    count_drifted: tuple[str, ...] = (),
) -> tuple[Any, dict[str, float]]:
    """One Evidently report with a ``ValueDrift(column, method, threshold)`` per column of
    ``methods``; returns the snapshot and ``column -> score``. ``count_drifted``: those columns
    also get a ``DriftedColumnsCount`` with the same methods and thresholds (its share is the
    report's drifted share, which the project dashboard plots)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    columns = tuple(methods)
    definition = DataDefinition(
        numerical_columns=[c for c in columns if c not in CATEGORICAL],
        categorical_columns=[c for c in columns if c in CATEGORICAL],
    )
    metrics: list[Any] = [ValueDrift(column=c, method=m, threshold=t) for c, (m, t) in methods.items()]
    if count_drifted:
        metrics.append(
            DriftedColumnsCount(
                columns=list(count_drifted),
                per_column_method={c: methods[c][0] for c in count_drifted},
                per_column_threshold={c: methods[c][1] for c in count_drifted},
            )
        )
    report = Report(
        metrics,
        metadata=dict(metadata or {}),
        tags=list(tags or []),
    )
    with warnings.catch_warnings():
        # DriftedColumnsCount runs Evidently's legacy dataset drift, which also correlates the
        # numeric columns (np.corrcoef) for a table this report never shows: a constant column
        # in a window (every joiner has tenure 0) divides by a zero deviation there.
        warnings.filterwarnings(
            "ignore",
            message="invalid value encountered in divide",
            category=RuntimeWarning,
            module=r"numpy\.lib\._function_base_impl",
        )
        snapshot = report.run(
            Dataset.from_pandas(_evidently_frame(current, columns), data_definition=definition),
            Dataset.from_pandas(_evidently_frame(reference, columns), data_definition=definition),
            timestamp=timestamp,
            name=name,
        )
    values = _metric_values(snapshot)
    return snapshot, {c: values[(c, m)] for c, (m, _) in methods.items()}


def _safe_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _performance(labelled: pd.DataFrame | None, holdout: pd.DataFrame | None) -> Performance:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    def figures(
        frame: pd.DataFrame | None,
    ) -> tuple[int, float | None, float | None, float | None, float | None]:
        if frame is None:
            return 0, None, None, None, None
        rows = frame[frame[LABEL].notna()]
        if rows.empty:
            return 0, None, None, None, None
        y = rows[LABEL].to_numpy(dtype=np.int64)
        p = rows[SCORE].to_numpy(dtype=np.float64)
        auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None
        return len(rows), float(y.mean()), float(p.mean()), auc, float(brier_score_loss(y, p))

    n, rate, mean, auc, brier = figures(labelled)
    _, _, _, h_auc, h_brier = figures(holdout)
    return Performance(n, rate, mean, auc, brier, h_auc, h_brier)


def _concept(
    *,
    holdout: pd.DataFrame | None,
    labelled: pd.DataFrame | None,
    policy: DriftPolicy,
    timestamp: datetime,
    metadata: Mapping[str, str],
    tags: list[str],
) -> tuple[ConceptDecision, Any]:
    from scipy.stats import ks_2samp

    rules = policy.concept_drift
    if holdout is not None and SCORE not in holdout.columns:
        raise MonitoringError(
            f"holdout: no {SCORE!r} column; versions trained before the holdout kept its score need "
            "the holdout scored with the version's model (or retrain) before concept drift can be judged"
        )
    if labelled is not None and len(labelled) > policy.current_rows:
        # every matured label counts (the performance block); the test reads a seeded sample
        rows = labelled[labelled[LABEL].notna()] if LABEL in labelled.columns else labelled
        if len(rows) > policy.current_rows:
            rng = np.random.default_rng(policy.seed)
            labelled = rows.iloc[np.sort(rng.choice(len(rows), size=policy.current_rows, replace=False))]
    u_now = frame_pit(frame=labelled, seed=policy.seed) if labelled is not None else np.empty(0)
    u_ref = frame_pit(frame=holdout, seed=policy.seed) if holdout is not None else np.empty(0)
    enough = len(u_now) >= rules.min_labelled_rows and len(u_ref) >= rules.min_holdout_rows
    if not enough:
        return decide_concept(
            statistic=None, p_value=None, labelled_rows=len(u_now), holdout_rows=len(u_ref), rules=rules
        ), None
    snapshot, values = run_value_drift(
        reference=pd.DataFrame({PIT_COLUMN: u_ref}),
        current=pd.DataFrame({PIT_COLUMN: u_now}),
        methods={PIT_COLUMN: (CONCEPT_METHOD, rules.alpha)},
        timestamp=timestamp,
        metadata={**metadata, SNAPSHOT_PART: PART_CONCEPT_DRIFT},
        tags=tags,
        name="concept drift (randomized PIT)",
    )
    statistic = float(ks_2samp(u_ref, u_now).statistic)
    decision = decide_concept(
        statistic=statistic,
        p_value=values[PIT_COLUMN],
        labelled_rows=len(u_now),
        holdout_rows=len(u_ref),
        rules=rules,
    )
    return decision, snapshot


def _performance_snapshot(
    *,
    labelled: pd.DataFrame | None,
    timestamp: datetime,
    metadata: Mapping[str, str],
    tags: list[str],
    name: str,
) -> Any:
    """Evidently's ``RocAuc`` of the matured labels (the live ROC-AUC the dashboard plots over
    time); None without both classes among them."""
    if labelled is None or LABEL not in labelled.columns or SCORE not in labelled.columns:
        return None
    rows = labelled[labelled[LABEL].notna() & labelled[SCORE].notna()]
    y = rows[LABEL].to_numpy(dtype=np.int64)
    if not 0 < y.sum() < len(y):
        return None
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import RocAuc
    from sklearn.exceptions import UndefinedMetricWarning

    frame = pd.DataFrame({LABEL: y, SCORE: rows[SCORE].to_numpy(dtype=np.float64)})
    definition = DataDefinition(
        classification=[BinaryClassification(target=LABEL, prediction_probas=SCORE)],
        numerical_columns=[SCORE],
    )
    report = Report([RocAuc()], metadata=dict(metadata), tags=list(tags))
    with warnings.catch_warnings():
        # RocAuc computes Evidently's whole binary-classification quality on the way, with
        # precision at a 0.5 cut-off: a window with no score over 0.5 (usual for churn) makes
        # scikit-learn warn about a figure this report does not use.
        warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
        return report.run(
            Dataset.from_pandas(frame, data_definition=definition), None, timestamp=timestamp, name=name
        )


def detect_drift(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
    labelled: pd.DataFrame | None = None,
    policy: DriftPolicy,
    model_name: str,
    model_version: str | int,
    window_start: datetime,
    window_end: datetime,
) -> DriftResult:
    """Data, prediction and concept drift plus data quality of ``current`` against ``reference``.

    ``reference`` / ``current`` carry the 19 churn_v1 features and ``score``; ``holdout`` (the
    version's ``evaluation/holdout.parquet`` with its ``score``) and ``labelled`` (the window's
    rows whose label has matured) carry ``score``, ``churned``, ``customer_id`` and
    ``event_timestamp``. Below ``policy.min_current_rows`` / ``min_reference_rows`` the status is
    ``insufficient_data`` and no score is computed.
    """
    wanted = (*FEATURE_NAMES, SCORE)
    _require(reference, name="reference", columns=wanted)
    _require(current, name="current", columns=wanted)
    if window_end < window_start:
        raise MonitoringError(
            f"window_end {window_end.isoformat()} is before window_start {window_start.isoformat()}"
        )
    source_rows = len(reference)
    reference = sample_reference(reference=reference, rows=policy.reference_rows, seed=policy.seed)
    ids = {
        "model_name": model_name,
        "model_version": str(model_version),
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
    }
    metadata, tags = snapshot_metadata(**ids), snapshot_tags(**ids)
    timestamp = window_end.replace(tzinfo=None) if window_end.tzinfo is not None else window_end
    concept, concept_snapshot = _concept(
        holdout=holdout, labelled=labelled, policy=policy, timestamp=timestamp, metadata=metadata, tags=tags
    )
    rules = policy.data_drift
    js_threshold = policy.prediction_drift.threshold
    enough = len(current) >= policy.min_current_rows and len(reference) >= policy.min_reference_rows
    snapshot = None
    scores: dict[str, float] = {}
    if enough:
        methods = {
            name: (DATA_METHOD, rules.threshold(name))
            for name in FEATURE_NAMES
            if _usable(reference, name) and _usable(current, name)
        }
        if _usable(reference, SCORE) and _usable(current, SCORE):
            methods[SCORE] = (PREDICTION_METHOD, js_threshold)
        snapshot, scores = run_value_drift(
            reference=reference,
            current=current,
            methods=methods,
            timestamp=timestamp,
            metadata={**metadata, SNAPSHOT_PART: PART_DATA_DRIFT},
            tags=tags,
            count_drifted=tuple(name for name in methods if name != SCORE),
            name=f"drift {model_name} v{model_version} {window_start.date()}..{window_end.date()}",
        )
    features = tuple(
        FeatureDrift(
            feature=name,
            score=_safe_float(scores[name]) if name in scores else None,
            threshold=rules.threshold(name),
            drifted=name in scores and bool(scores[name] >= rules.threshold(name)),
        )
        for name in FEATURE_NAMES
    )
    js = scores.get(SCORE)
    ref_scores = pd.to_numeric(reference[SCORE], errors="coerce")
    cur_scores = pd.to_numeric(current[SCORE], errors="coerce")
    prediction = PredictionDrift(
        score=None if js is None else _safe_float(js),
        threshold=js_threshold,
        drifted=js is not None and bool(js >= js_threshold),
        reference_mean=_safe_float(ref_scores.mean()) if ref_scores.notna().any() else None,
        current_mean=_safe_float(cur_scores.mean()) if cur_scores.notna().any() else None,
    )
    status: ReportStatus
    if not enough:
        status = ReportStatus.INSUFFICIENT_DATA
    elif any(f.drifted for f in features) or prediction.drifted or concept.drifted:
        status = ReportStatus.DRIFT
    else:
        status = ReportStatus.NO_DRIFT
    return DriftResult(
        status=status,
        model_name=model_name,
        model_version=str(model_version),
        reference_rows=len(reference),
        reference_source_rows=source_rows,
        window_start=window_start,
        window_end=window_end,
        current_rows=len(current),
        features=features,
        prediction=prediction,
        concept=concept,
        concept_threshold=policy.concept_drift.alpha,
        quality=data_quality(frame=current),
        performance=_performance(labelled, holdout),
        policy_name=policy.name,
        policy_digest=policy.digest(),
        snapshot=snapshot,
        concept_snapshot=concept_snapshot,
        performance_snapshot=_performance_snapshot(
            labelled=labelled,
            timestamp=timestamp,
            metadata={**metadata, SNAPSHOT_PART: PART_PERFORMANCE},
            tags=tags,
            name=f"performance {model_name} v{model_version} {window_start.date()}..{window_end.date()}",
        ),
    )
