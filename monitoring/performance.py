"""Live model performance from the prediction log joined to labels that arrived later.

A label row at snapshot ``t`` says whether the customer churned before the next snapshot, so it
only *matures* a horizon after ``t``: a prediction counts once ``feature_ts + horizon <= as_of``
and its label was known (``created <= as_of``). Replaying with an earlier ``as_of`` therefore
gives the report that could have been written then.

The join: prediction (``customer_id``, ``feature_ts``) = label (``customer_id``,
``event_timestamp``). Several predictions of one customer-snapshot by one model version (the
customer was scored again before the next snapshot, or a batch was replayed) are one outcome:
the **earliest** prediction is kept. The score is the same for the same version and features,
and the earliest prediction is the one the business could act on first, so keeping it counts
every customer-snapshot once and reports the honest label lag. Several label rows of one
customer-snapshot resolve as Feast does: the latest ``created`` known at ``as_of`` wins.

Metrics come from :mod:`churnops.training.metrics` (the same definitions as the test split),
per model version overall and per week (ISO, Monday start) or month of the prediction time.
Joined rows are grouped by model version and ordered by prediction time and score within it
(then the log's row order), so ties in the top-decile ranking break the same way every run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnops.contracts.columns import CREATED_TS, EVENT_TS, LABEL, SCORE
from churnops.contracts.mlflow_keys import TEST_PREFIX, split_metric
from churnops.contracts.monitoring_terms import LABEL_INPUT as LABEL_COLUMNS
from churnops.contracts.monitoring_terms import (
    LABEL_LAG_S,
    MonitoringCounts,
    PerformanceStatus,
    count_matured_labels,
)
from churnops.contracts.monitoring_terms import MATURED_COLUMNS as OUTCOME_COLUMNS
from churnops.contracts.monitoring_terms import PREDICTION_INPUT as PREDICTION_COLUMNS
from churnops.contracts.prediction_log import FEATURE_TS, MODEL_VERSION, ParquetRows
from churnops.contracts.prediction_log import TS as PREDICTION_TS
from churnops.training.metrics import compute_metrics
from monitoring.baseline import TrainingWindow

DEFAULT_HORIZON = timedelta(days=31)
# The metrics compared with the version's own test metrics (MLflow ``test_<metric>``).
REPORTED_METRICS = (
    "roc_auc",
    "pr_auc",
    "brier",
    "top_decile_lift",
    "precision_at_threshold",
    "recall_at_threshold",
    "log_loss",
    "base_rate",
)
THRESHOLD_METRICS = ("precision_at_threshold", "recall_at_threshold")
"""Left out for a version whose decision threshold is unknown (never computed at a made-up one)."""
GROUPED_COLUMNS = (MODEL_VERSION, PREDICTION_TS, SCORE, LABEL, LABEL_LAG_S)
"""The matured rows' columns the grouped figures read."""

Period = Literal["week", "month"]


class PerformanceInputError(ValueError):
    """The prediction log or the labels cannot be joined as given."""


@dataclass(frozen=True)
class MaturedOutcomes:
    """The joined rows (one per model version and customer-snapshot) and what was left out."""

    frame: pd.DataFrame
    scored: int
    duplicates: int
    immature: int
    unlabelled: int
    in_sample: int = 0
    """Predictions on a snapshot inside their version's training window: left out of every figure."""
    matured_labels: int = 0
    """All the matured labels (``frame`` holds them all, or the sample asked for)."""
    versions: tuple[str, ...] = ()
    """The model versions among the scored predictions."""


@dataclass(frozen=True)
class GroupPerformance:
    """One model version over one period (``period == "all"``: the whole window)."""

    model_version: str
    period: str
    period_start: str | None
    status: PerformanceStatus
    reason: str | None
    rows: int
    positives: int
    threshold: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)
    delta: dict[str, float] = field(default_factory=dict)
    label_lag_median_s: float | None = None
    label_lag_p90_s: float | None = None


@dataclass(frozen=True)
class PerformanceReport:
    """Per version (``versions``) and per version and period (``periods``), oldest period first."""

    model_name: str | None
    as_of: str
    horizon_s: float
    period: Period
    start: str | None
    end: str | None
    scored: int
    duplicates: int
    immature: int
    unlabelled: int
    matured: int
    versions: tuple[GroupPerformance, ...]
    periods: tuple[GroupPerformance, ...]
    in_sample: int = 0
    """Predictions inside their version's training window: excluded from every figure above."""
    unknown_windows: tuple[str, ...] = ()
    """Versions whose training window is unknown: their in-sample rows could not be excluded."""

    def counts(self) -> tuple[MonitoringCounts, ...]:
        """Per version, its matured labels in the monitoring vocabulary (no drift judged here)."""
        bounds = [None if v is None else datetime.fromisoformat(v) for v in (self.start, self.end)]
        return tuple(
            MonitoringCounts(
                model_version=group.model_version,
                matured_labels=group.rows,
                as_of=datetime.fromisoformat(self.as_of),
                labels_start=bounds[0],
                labels_end=bounds[1],
            )
            for group in self.versions
        )

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = _finite(asdict(self))
        doc["counts"] = [c.to_json() for c in self.counts()]
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def _finite(node: Any) -> Any:
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def _check_columns(columns: list[str], *, name: str, required: tuple[str, ...], hint: str) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise PerformanceInputError(f"{name} is missing column(s) {missing}; {hint}")


def _aware(value: datetime, *, name: str) -> pd.Timestamp:
    if value.tzinfo is None:
        raise PerformanceInputError(f"{name} must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
    return pd.Timestamp(value).tz_convert(UTC)


Rows: TypeAlias = pd.DataFrame | pa.Table | ParquetRows
"""Predictions or labels: a pandas frame, an Arrow table as the log and source readers give, or
parquet files DuckDB reads in place (``churnops.wiring.prediction_window_rows``)."""


def _arrow(
    rows: Rows, *, name: str, columns: tuple[str, ...], times: tuple[str, ...]
) -> pa.Table | ParquetRows:
    """The columns as an Arrow table, times as tz-aware microseconds; ids as strings (nulls kept).
    Parquet files go through as they are (the log's and the sources' own schemas)."""
    if isinstance(rows, ParquetRows):
        return rows
    if isinstance(rows, pd.DataFrame):
        frame = rows.loc[:, list(columns)]
        for column in columns:
            if frame[column].dtype == object and column not in times:
                frame[column] = frame[column].astype("string[pyarrow]")
        table = pa.Table.from_pandas(frame, preserve_index=False)
    else:
        table = rows.select(list(columns))
    for column in times:
        kind = table.schema.field(column).type
        if not (pa.types.is_timestamp(kind) and kind.tz):
            raise PerformanceInputError(
                f"{name}.{column} must be a tz-aware datetime column (got {kind}); "
                "localize it to UTC first (series.dt.tz_localize('UTC'))"
            )
        at = table.schema.get_field_index(column)
        utc = table.column(column).cast(pa.timestamp("us", "UTC"), safe=False)
        table = table.set_column(at, column, utc)
    return table


def _columns(rows: Rows) -> list[str]:
    if isinstance(rows, ParquetRows):
        return [*PREDICTION_COLUMNS, *LABEL_COLUMNS]  # the log's and the label source's schemas
    return list(rows.columns) if isinstance(rows, pd.DataFrame) else list(rows.column_names)


def _values(rows: Rows, column: str) -> set[str]:
    """The distinct non-null values of a column, as text ({} when there is no such column, or
    the rows are files read in place)."""
    if isinstance(rows, ParquetRows) or column not in _columns(rows):
        return set()
    if isinstance(rows, pd.DataFrame):
        return {str(v) for v in rows[column].dropna().unique()}
    return {str(v) for v in pc.unique(rows.column(column)).drop_null().to_pylist()}


def matured_outcomes(
    *,
    predictions: Rows,
    labels: Rows,
    as_of: datetime,
    horizon: timedelta = DEFAULT_HORIZON,
    start: datetime | None = None,
    end: datetime | None = None,
    training_windows: Mapping[str, TrainingWindow | None] | None = None,
    sample: int | None = None,
    seed: int = 0,
    columns: tuple[str, ...] = OUTCOME_COLUMNS,
) -> MaturedOutcomes:
    """Scored predictions in ``[start, end)`` joined to the labels known at ``as_of``, matured rows
    only: :func:`churnops.contracts.monitoring_terms.count_matured_labels` (the one definition of a
    matured label) on frames or Arrow tables, the rows returned as pandas (ids as Arrow strings).

    ``training_windows`` (per model version): a prediction whose feature time lies inside its
    version's training window is in-sample (a backfill over months the model learned from) and is
    left out, counted in ``in_sample``. A version missing from the mapping, or mapped to None,
    has no known window: nothing of it can be left out (the reports name such versions).
    ``sample``: ``frame`` holds a seeded sample of at most this many (``matured_labels`` counts
    them all); ``columns``: the frame's columns (default all of :data:`OUTCOME_COLUMNS`).
    """
    from churnops.contracts.prediction_log import arrow_frame

    _check_columns(
        _columns(predictions),
        name="predictions",
        required=PREDICTION_COLUMNS,
        hint="pass the prediction log (churnops.contracts.prediction_log.read_prediction_log)",
    )
    _check_columns(
        _columns(labels),
        name="labels",
        required=LABEL_COLUMNS,
        hint="pass the label source (<home>/sources/labels)",
    )
    if horizon < timedelta(0):
        raise PerformanceInputError(f"horizon must be >= 0, got {horizon}")
    counted = count_matured_labels(
        predictions=_arrow(
            predictions, name="predictions", columns=PREDICTION_COLUMNS, times=(PREDICTION_TS, FEATURE_TS)
        ),
        labels=_arrow(labels, name="labels", columns=LABEL_COLUMNS, times=(EVENT_TS, CREATED_TS)),
        as_of=_aware(as_of, name="as_of").to_pydatetime(),
        horizon=horizon,
        start=None if start is None else _aware(start, name="start").to_pydatetime(),
        end=None if end is None else _aware(end, name="end").to_pydatetime(),
        training_windows=training_windows,
        sample=sample,
        seed=seed,
        columns=columns,
    )
    from pyarrow import default_memory_pool

    frame = arrow_frame(counted.table)
    default_memory_pool().release_unused()
    return MaturedOutcomes(
        frame=frame,
        scored=counted.scored,
        duplicates=counted.duplicates,
        immature=counted.immature,
        unlabelled=counted.unlabelled,
        in_sample=counted.in_sample,
        matured_labels=counted.matured_labels,
        versions=counted.versions,
    )


def _period_starts(ts: pd.Series, period: Period) -> pd.Series:
    naive = ts.dt.tz_localize(None)
    if period == "month":
        starts: pd.Series = naive.dt.to_period("M").dt.start_time
    else:
        starts = naive.dt.normalize() - pd.to_timedelta(naive.dt.weekday, unit="D")
    localized: pd.Series = starts.dt.tz_localize(UTC)
    return localized


def _period_name(start: pd.Timestamp, period: Period) -> str:
    if period == "month":
        return f"{start.year:04d}-{start.month:02d}"
    year, week, _ = start.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _reference(metrics: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in REPORTED_METRICS:
        for key in (split_metric(TEST_PREFIX, name), name):
            if key in metrics and metrics[key] is not None:
                out[name] = float(metrics[key])
                break
    return out


def _group(
    rows: pd.DataFrame,
    *,
    version: str,
    period: str,
    period_start: str | None,
    threshold: float | None,
    reference: dict[str, float],
    min_rows: int,
    min_positives: int,
) -> GroupPerformance:
    y = rows[LABEL].to_numpy(dtype=np.int64)
    n, positives = len(y), int(y.sum())
    lags = rows[LABEL_LAG_S].to_numpy(dtype=np.float64)
    lag_median = float(np.median(lags)) if n else None
    lag_p90 = float(np.quantile(lags, 0.9)) if n else None
    reason = None
    if n < min_rows:
        reason = f"{n} matured labels < min_rows={min_rows}"
    elif positives < min_positives:
        reason = f"{positives} positives < min_positives={min_positives}"
    elif positives == n:
        reason = f"all {n} rows are positive"
    common: dict[str, Any] = {
        "model_version": version,
        "period": period,
        "period_start": period_start,
        "rows": n,
        "positives": positives,
        "threshold": threshold,
        "reference": reference,
        "label_lag_median_s": lag_median,
        "label_lag_p90_s": lag_p90,
    }
    if reason is not None:
        return GroupPerformance(status=PerformanceStatus.INSUFFICIENT_DATA, reason=reason, **common)
    # An unknown threshold: the threshold metrics are dropped below (0.5 only fills the argument).
    values = compute_metrics(
        y, rows[SCORE].to_numpy(dtype=np.float64), threshold=0.5 if threshold is None else threshold
    )
    metrics = {k: values[k] for k in REPORTED_METRICS if threshold is not None or k not in THRESHOLD_METRICS}
    delta = {k: metrics[k] - reference[k] for k in REPORTED_METRICS if k in reference}
    return GroupPerformance(status=PerformanceStatus.OK, reason=None, metrics=metrics, delta=delta, **common)


def _threshold_of(version: str, threshold: float | Mapping[str, float | None]) -> float | None:
    if isinstance(threshold, Mapping):
        if version not in threshold:
            raise PerformanceInputError(
                f"threshold has no entry for model version {version!r} (known: {sorted(threshold)}); "
                "pass the version's registered 'threshold' metric"
            )
        value = threshold[version]
        return None if value is None else float(value)
    return float(threshold)


def performance_on_late_labels(
    *,
    predictions: Rows,
    labels: Rows,
    as_of: datetime,
    horizon: timedelta = DEFAULT_HORIZON,
    period: Period = "month",
    threshold: float | Mapping[str, float | None],
    reference_metrics: Mapping[str, Mapping[str, float]],
    start: datetime | None = None,
    end: datetime | None = None,
    min_rows: int = 100,
    min_positives: int = 10,
    training_windows: Mapping[str, TrainingWindow | None] | None = None,
    model_name: str | None = None,
) -> PerformanceReport:
    """Matured live performance per model version and per period, next to each version's test metrics.

    ``threshold``: one score threshold, or one per model version (the run's ``threshold``
    metric; None when it is unknown, e.g. the run was deleted: that version's
    ``THRESHOLD_METRICS`` are left out). ``reference_metrics``: per model version, its registered
    metrics (``test_roc_auc`` ... or plain ``roc_auc`` ...); a version without them gets no deltas.
    Groups with fewer than ``min_rows`` rows or ``min_positives`` positives are
    ``insufficient_data`` with no metrics.
    ``model_name``: the model the predictions are of, when the frame has no ``model_name``
    column (a window read for one model, :func:`churnops.contracts.prediction_log.scored_window`).
    """
    if period not in ("week", "month"):
        raise PerformanceInputError(f"period must be 'week' or 'month', got {period!r}")
    if min_rows < 1 or min_positives < 1:
        raise PerformanceInputError(
            f"min_rows and min_positives must be >= 1 (got {min_rows}, {min_positives})"
        )
    outcomes = matured_outcomes(
        predictions=predictions,
        labels=labels,
        as_of=as_of,
        horizon=horizon,
        start=start,
        end=end,
        training_windows=training_windows,
        columns=GROUPED_COLUMNS,  # what the figures read: no ids, no snapshot times
    )
    frame = outcomes.frame
    frame["_period_start"] = _period_starts(frame[PREDICTION_TS], period)
    names = sorted(_values(predictions, "model_name"))
    if model_name is not None and set(names) <= {model_name}:
        names = [model_name]  # a window read for one model carries no model_name column
    if len(names) > 1:
        raise PerformanceInputError(
            f"predictions hold several models {names}; pass one model's prediction log at a time"
        )
    limits = {"min_rows": min_rows, "min_positives": min_positives}
    versions: list[GroupPerformance] = []
    periods: list[GroupPerformance] = []
    traffic = sorted({str(v) for v in frame[MODEL_VERSION].unique()}, key=_version_key)
    for version in traffic:
        rows = frame if len(traffic) == 1 else frame[frame[MODEL_VERSION] == version]
        thr = _threshold_of(version, threshold)
        ref = _reference(reference_metrics.get(version, {}))
        versions.append(
            _group(
                rows, version=version, period="all", period_start=None, threshold=thr, reference=ref, **limits
            )
        )
        # one period's rows at a time (positions, not a sorted copy of the whole frame)
        for begin, where in sorted(rows.groupby("_period_start").indices.items()):
            stamp = pd.Timestamp(begin)  # type: ignore[arg-type]  # a group key: the period's start
            name, starts = _period_name(stamp, period), stamp.isoformat()
            if len(where) == len(rows):  # the version's every row: its figures, not a second copy
                periods.append(replace(versions[-1], period=name, period_start=starts))
                continue
            periods.append(
                _group(
                    rows.take(np.asarray(where, dtype=np.int64)),
                    version=version,
                    period=name,
                    period_start=starts,
                    threshold=thr,
                    reference=ref,
                    **limits,
                )
            )
    return PerformanceReport(
        model_name=names[0] if names else None,
        as_of=_aware(as_of, name="as_of").isoformat(),
        horizon_s=horizon.total_seconds(),
        period=period,
        start=None if start is None else _aware(start, name="start").isoformat(),
        end=None if end is None else _aware(end, name="end").isoformat(),
        scored=outcomes.scored,
        duplicates=outcomes.duplicates,
        immature=outcomes.immature,
        unlabelled=outcomes.unlabelled,
        matured=len(frame),
        versions=tuple(versions),
        periods=tuple(periods),
        in_sample=outcomes.in_sample,
        unknown_windows=tuple(
            sorted(
                set(outcomes.versions)
                - {str(v) for v, w in (training_windows or {}).items() if w is not None},
                key=_version_key,
            )
        ),
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
