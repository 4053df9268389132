"""monitoring.performance: the late-label join against a brute-force oracle, and the grouped metrics."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.baseline import TrainingWindow, training_window
from monitoring.performance import (
    THRESHOLD_METRICS,
    PerformanceInputError,
    matured_outcomes,
    performance_on_late_labels,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MONTH = timedelta(days=31)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Pred:
    version: str
    customer: str
    feature_ts: datetime
    ts: datetime
    score: float | None
    status: str


@dataclass(frozen=True)
class Lab:
    customer: str
    event_ts: datetime
    created: datetime
    churned: int


def predictions_frame(preds: list[Pred], *, model_name: str = "churn") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(preds))],
            "ts": pd.to_datetime([p.ts for p in preds], utc=True),
            "feature_ts": pd.to_datetime([p.feature_ts for p in preds], utc=True),
            "endpoint": "batch",
            "customer_id": [p.customer for p in preds],
            "model_name": model_name,
            "model_version": [p.version for p in preds],
            "score": pd.array([p.score for p in preds], dtype="Float64").astype("float64"),
            "status": [p.status for p in preds],
        }
    )


def labels_frame(labels: list[Lab]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [lab.customer for lab in labels],
            "event_timestamp": pd.to_datetime([lab.event_ts for lab in labels], utc=True),
            "created": pd.to_datetime([lab.created for lab in labels], utc=True),
            "churned": [lab.churned for lab in labels],
        }
    )


# --------------------------------------------------------------------------- the join, brute force

SNAPSHOTS = [T0 + i * MONTH for i in range(2)]
preds_st = st.builds(
    Pred,
    version=st.sampled_from(["1", "2"]),
    customer=st.sampled_from(["A-1", "B-2"]),
    feature_ts=st.sampled_from(SNAPSHOTS),
    ts=st.integers(0, 24 * 40).map(lambda h: T0 + h * HOUR),
    score=st.one_of(st.none(), st.integers(0, 4).map(lambda i: i / 4)),
    status=st.sampled_from(["ok", "ok", "ok", "stale_features"]),
)
labels_st = st.builds(
    Lab,
    customer=st.sampled_from(["A-1", "B-2", "D-4"]),
    event_ts=st.sampled_from([*SNAPSHOTS, T0 + 5 * HOUR]),
    created=st.integers(0, 24 * 80).map(lambda h: T0 + h * HOUR),
    churned=st.integers(0, 1),
)


def oracle(
    preds: list[Pred],
    labels: list[Lab],
    *,
    as_of: datetime,
    horizon: timedelta,
    windows: dict[str, TrainingWindow | None] | None = None,
) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    """The join spelled out row by row."""
    scored = [p for p in preds if p.status == "ok" and p.score is not None]
    first: dict[tuple[str, str, datetime], Pred] = {}
    for p in scored:
        key = (p.version, p.customer, p.feature_ts)
        if key not in first or (p.ts, p.score) < (first[key].ts, first[key].score):
            first[key] = p
    rows, immature, unlabelled, in_sample = [], 0, 0, 0
    for (version, customer, fts), p in first.items():
        window = (windows or {}).get(version)
        if window is not None and window.start <= fts <= window.end:
            in_sample += 1
            continue
        if fts + horizon > as_of:
            immature += 1
            continue
        known = [
            (lab.created, i, lab)
            for i, lab in enumerate(labels)
            if lab.customer == customer and lab.event_ts == fts and lab.created <= as_of
        ]
        if not known:
            unlabelled += 1
            continue
        lab = max(known, key=lambda k: (k[0], k[1]))[2]
        rows.append(
            (version, customer, fts, p.ts, p.score, lab.churned, (lab.created - p.ts).total_seconds())
        )
    counts = {
        "scored": len(scored),
        "duplicates": len(scored) - len(first),
        "immature": immature,
        "unlabelled": unlabelled,
        "in_sample": in_sample,
    }
    return sorted(rows), counts


@st.composite
def join_cases(draw: st.DrawFn) -> tuple[list[Pred], list[Lab]]:
    """Random rows, plus re-scorings of drawn customer-snapshots and labels for them (collisions)."""
    preds = draw(st.lists(preds_st, max_size=16))
    labels = draw(st.lists(labels_st, max_size=6))
    if preds:
        for p in draw(st.lists(st.sampled_from(preds), max_size=8)):
            ts, score = draw(preds_st.map(lambda q: (q.ts, q.score)))
            preds.append(Pred(p.version, p.customer, p.feature_ts, ts, score, "ok"))
        for p in draw(st.lists(st.sampled_from(preds), max_size=8)):
            lab = draw(labels_st)
            labels.append(Lab(p.customer, p.feature_ts, lab.created, lab.churned))
    return draw(st.permutations(preds)), labels


WINDOWS = [
    None,
    TrainingWindow(start=SNAPSHOTS[0], end=SNAPSHOTS[0]),
    TrainingWindow(start=T0, end=SNAPSHOTS[1]),
]


@settings(max_examples=150, deadline=None)
@given(
    case=join_cases(),
    as_of_days=st.integers(0, 90),
    horizon_days=st.sampled_from([0, 31]),
    windows=st.fixed_dictionaries({"1": st.sampled_from(WINDOWS), "2": st.sampled_from(WINDOWS)}),
)
def test_join_matches_brute_force(
    case: tuple[list[Pred], list[Lab]],
    as_of_days: int,
    horizon_days: int,
    windows: dict[str, TrainingWindow | None],
) -> None:
    preds, labels = case
    as_of, horizon = T0 + timedelta(days=as_of_days), timedelta(days=horizon_days)
    got = matured_outcomes(
        predictions=predictions_frame(preds),
        labels=labels_frame(labels),
        as_of=as_of,
        horizon=horizon,
        training_windows=windows,
    )
    expected, counts = oracle(preds, labels, as_of=as_of, horizon=horizon, windows=windows)
    rows = sorted(
        (
            r.model_version,
            r.customer_id,
            r.feature_ts.to_pydatetime(),
            r.ts.to_pydatetime(),
            r.score,
            int(r.churned),
            r.label_lag_s,
        )
        for r in got.frame.itertuples()
    )
    assert rows == expected
    assert {
        "scored": got.scored,
        "duplicates": got.duplicates,
        "immature": got.immature,
        "unlabelled": got.unlabelled,
        "in_sample": got.in_sample,
    } == counts


def test_join_keeps_the_earliest_prediction_and_the_latest_known_label() -> None:
    preds = [
        Pred("3", "A-1", T0, T0 + 5 * HOUR, 0.9, "ok"),
        Pred("3", "A-1", T0, T0 + 2 * HOUR, 0.8, "ok"),  # earliest: kept
        Pred("3", "A-1", T0, T0 + 1 * HOUR, 0.1, "unknown_customer"),  # not a score
    ]
    labels = [
        Lab("A-1", T0, T0 + 10 * HOUR, 0),
        Lab("A-1", T0, T0 + 20 * HOUR, 1),  # latest known: wins
        Lab("A-1", T0, T0 + 60 * 24 * HOUR, 0),  # created after as_of: not known yet
    ]
    got = matured_outcomes(
        predictions=predictions_frame(preds), labels=labels_frame(labels), as_of=T0 + MONTH + HOUR
    )
    assert got.duplicates == 1 and len(got.frame) == 1
    row = got.frame.iloc[0]
    assert (row.score, row.churned, row.label_lag_s) == (0.8, 1, 18 * 3600.0)
    # One hour earlier the row has not matured (feature_ts + 31 days > as_of).
    early = matured_outcomes(
        predictions=predictions_frame(preds), labels=labels_frame(labels), as_of=T0 + MONTH - HOUR
    )
    assert early.frame.empty and early.immature == 1


def test_start_and_end_filter_on_prediction_time() -> None:
    preds = [Pred("1", "A-1", T0, T0 + h * HOUR, 0.5, "ok") for h in (1, 3)]
    preds += [Pred("1", "B-2", T0, T0 + 2 * HOUR, 0.5, "ok")]
    got = matured_outcomes(
        predictions=predictions_frame(preds),
        labels=labels_frame([Lab(c, T0, T0, 0) for c in ("A-1", "B-2")]),
        as_of=T0 + 2 * MONTH,
        start=T0 + 2 * HOUR,
        end=T0 + 3 * HOUR,
    )
    assert list(got.frame.customer_id) == ["B-2"] and got.scored == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p, lab: (p.drop(columns="feature_ts"), lab),
            "predictions is missing column(s) ['feature_ts']",
        ),
        (lambda p, lab: (p, lab.drop(columns="created")), "labels is missing column(s) ['created']"),
        (
            lambda p, lab: (p.assign(ts=p.ts.dt.tz_localize(None)), lab),
            "predictions.ts must be a tz-aware datetime column",
        ),
    ],
)
def test_bad_input_names_the_field(change: Any, message: str) -> None:
    p = predictions_frame([Pred("1", "A-1", T0, T0, 0.5, "ok")])
    lab = labels_frame([Lab("A-1", T0, T0, 1)])
    p, lab = change(p, lab)
    with pytest.raises(PerformanceInputError, match=re.escape(message)):
        matured_outcomes(predictions=p, labels=lab, as_of=T0 + 2 * MONTH)


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(PerformanceInputError, match="as_of must be timezone-aware"):
        matured_outcomes(
            predictions=predictions_frame([]), labels=labels_frame([]), as_of=datetime(2026, 3, 1)
        )


# --------------------------------------------------------------------------- metrics per group


def brute_auc(y: list[int], s: list[float]) -> float:
    pos = [si for yi, si in zip(y, s, strict=True) if yi == 1]
    neg = [si for yi, si in zip(y, s, strict=True) if yi == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def scored_population(
    y: list[int], s: list[float], *, version: str = "1", when: datetime = T0
) -> tuple[list[Pred], list[Lab]]:
    preds = [Pred(version, f"C{i:04d}", when, when + HOUR, si, "ok") for i, si in enumerate(s)]
    labels = [Lab(f"C{i:04d}", when, when + (i + 2) * HOUR, yi) for i, yi in enumerate(y)]
    return preds, labels


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 20).map(lambda i: i / 20)), min_size=4, max_size=40
    )
)
def test_group_metrics_match_their_definitions(data: list[tuple[int, float]]) -> None:
    y, s = [d[0] for d in data], [d[1] for d in data]
    if len(set(y)) < 2:
        y[0], y[1] = 0, 1
    preds, labels = scored_population(y, s)
    report = performance_on_late_labels(
        predictions=predictions_frame(preds),
        labels=labels_frame(labels),
        as_of=T0 + 2 * MONTH,
        threshold=0.5,
        reference_metrics={"1": {"test_roc_auc": 0.8, "test_brier": 0.1}},
        min_rows=1,
        min_positives=1,
    )
    (group,) = report.versions
    assert group.status == "ok" and group.rows == len(y) and group.positives == sum(y)
    m = group.metrics
    assert math.isclose(m["roc_auc"], brute_auc(y, s), abs_tol=1e-12)
    assert math.isclose(m["brier"], sum((si - yi) ** 2 for yi, si in zip(y, s, strict=True)) / len(y))
    flagged = [yi for yi, si in zip(y, s, strict=True) if si >= 0.5]
    assert math.isclose(m["recall_at_threshold"], sum(flagged) / sum(y))
    assert math.isclose(m["precision_at_threshold"], sum(flagged) / len(flagged) if flagged else 0.0)
    top = math.ceil(len(y) / 10)
    # stable: ties keep row order (same prediction time and score: the input order)
    order = sorted(range(len(y)), key=lambda i: -s[i])
    assert math.isclose(m["top_decile_lift"], (sum(y[i] for i in order[:top]) / top) / (sum(y) / len(y)))
    assert group.delta == {"roc_auc": m["roc_auc"] - 0.8, "brier": m["brier"] - 0.1}
    assert group.reference == {"roc_auc": 0.8, "brier": 0.1}
    lags = [(i + 1) * 3600.0 for i in range(len(y))]
    assert group.label_lag_median_s == float(np.median(lags))
    assert group.label_lag_p90_s == float(np.quantile(lags, 0.9))


def test_periods_per_version_week_and_month() -> None:
    rng = np.random.default_rng(0)
    preds: list[Pred] = []
    labels: list[Lab] = []
    # Sunday 2026-02-01 23:00 and Monday 2026-02-02 00:00 fall in different ISO weeks, same month;
    # Saturday 2026-01-31 is in January.
    moments = {
        datetime(2026, 1, 31, 12, tzinfo=UTC): 120,
        datetime(2026, 2, 1, 23, tzinfo=UTC): 130,
        datetime(2026, 2, 2, 0, tzinfo=UTC): 140,
    }
    for k, (when, n) in enumerate(moments.items()):
        for i in range(n):
            cid = f"C{k}-{i}"
            churned = int(rng.uniform() < 0.3)
            preds.append(
                Pred("2", cid, T0, when, float(np.clip(0.3 + 0.4 * churned + rng.normal(0, 0.2), 0, 1)), "ok")
            )
            labels.append(Lab(cid, T0, T0 + HOUR, churned))
    preds += [Pred("1", f"C0-{i}", T0, T0 + HOUR, 0.5, "ok") for i in range(5)]  # version 1: too few rows
    kw: dict[str, Any] = {
        "predictions": predictions_frame(preds),
        "labels": labels_frame(labels),
        "as_of": datetime(2026, 3, 15, tzinfo=UTC),
        "threshold": {"1": 0.4, "2": 0.5},
        "reference_metrics": {"2": {"test_roc_auc": 0.9}},
    }
    weekly = performance_on_late_labels(period="week", **kw)
    got = [(g.model_version, g.period, g.rows, g.status) for g in weekly.periods]
    assert got == [
        ("1", "2026-W01", 5, "insufficient_data"),
        ("2", "2026-W05", 250, "ok"),
        ("2", "2026-W06", 140, "ok"),
    ]
    assert weekly.periods[1].period_start == "2026-01-26T00:00:00+00:00"
    monthly = performance_on_late_labels(period="month", **kw)
    assert [(g.model_version, g.period, g.rows) for g in monthly.periods] == [
        ("1", "2026-01", 5),
        ("2", "2026-01", 120),
        ("2", "2026-02", 270),
    ]
    v1, v2 = monthly.versions
    assert (v1.status, v1.metrics, v1.threshold, v1.reason) == (
        "insufficient_data",
        {},
        0.4,
        "5 matured labels < min_rows=100",
    )
    assert v2.status == "ok" and v2.rows == 390 and v2.metrics["roc_auc"] > 0.8
    assert v2.delta["roc_auc"] == v2.metrics["roc_auc"] - 0.9
    doc = json.loads(monthly.to_json())
    assert doc["versions"][1]["metrics"]["roc_auc"] == v2.metrics["roc_auc"]
    assert doc["model_name"] == "churn" and doc["matured"] == 395 and doc["horizon_s"] == 31 * 86400


def test_a_version_with_an_unknown_threshold_reports_no_threshold_metrics() -> None:
    """A run deleted from MLflow (or one that recorded no threshold): precision and recall at the
    threshold are left out, never computed at a made-up 0.5; the threshold-free metrics stay."""
    rng = np.random.default_rng(3)
    y = [int(v) for v in rng.integers(0, 2, 300)]
    s = [float(np.clip(0.3 + 0.3 * yi + rng.normal(0, 0.2), 0, 1)) for yi in y]
    preds, labels = scored_population(y, s)
    kw: dict[str, Any] = {
        "predictions": predictions_frame(preds),
        "labels": labels_frame(labels),
        "as_of": T0 + 2 * MONTH,
        "reference_metrics": {},
    }
    (unknown,) = performance_on_late_labels(threshold={"1": None}, **kw).versions
    (known,) = performance_on_late_labels(threshold={"1": 0.5}, **kw).versions
    assert unknown.status == known.status == "ok" and unknown.threshold is None
    assert set(THRESHOLD_METRICS) <= set(known.metrics)
    assert not set(THRESHOLD_METRICS) & set(unknown.metrics)
    assert unknown.metrics == {k: v for k, v in known.metrics.items() if k not in THRESHOLD_METRICS}


def test_insufficient_positives_and_single_class() -> None:
    y = [0] * 150 + [1] * 5
    preds, labels = scored_population(y, [0.1] * 150 + [0.9] * 5)
    kw: dict[str, Any] = {
        "predictions": predictions_frame(preds),
        "labels": labels_frame(labels),
        "as_of": T0 + 2 * MONTH,
        "threshold": 0.5,
        "reference_metrics": {},
    }
    (group,) = performance_on_late_labels(**kw).versions
    assert group.status == "insufficient_data" and group.reason == "5 positives < min_positives=10"
    preds, labels = scored_population([1] * 120, [0.9] * 120)
    kw.update(predictions=predictions_frame(preds), labels=labels_frame(labels))
    (group,) = performance_on_late_labels(**kw).versions
    assert group.reason == "all 120 rows are positive"


def test_report_refuses_a_version_without_threshold_and_mixed_models() -> None:
    preds, labels = scored_population([0, 1], [0.2, 0.8], version="7")
    kw: dict[str, Any] = {"labels": labels_frame(labels), "as_of": T0 + 2 * MONTH, "reference_metrics": {}}
    with pytest.raises(PerformanceInputError, match="threshold has no entry for model version '7'"):
        performance_on_late_labels(predictions=predictions_frame(preds), threshold={"1": 0.5}, **kw)
    mixed = pd.concat([predictions_frame(preds), predictions_frame(preds, model_name="other")])
    with pytest.raises(PerformanceInputError, match="several models"):
        performance_on_late_labels(predictions=mixed, threshold=0.5, **kw)
    with pytest.raises(PerformanceInputError, match="period must be 'week' or 'month'"):
        performance_on_late_labels(predictions=predictions_frame(preds), threshold=0.5, period="day", **kw)  # type: ignore[arg-type]


def test_reads_the_real_prediction_log_and_an_empty_one(tmp_path: Path) -> None:
    """Frames from the contracts' reader over what serving's writer wrote (feature_ts included)."""
    from churnops.contracts.prediction_log import LogRecord, read_prediction_log
    from serving.prediction_log import PredictionLog

    empty = read_prediction_log(tmp_path / "none").to_pandas()
    report = performance_on_late_labels(
        predictions=empty, labels=labels_frame([]), as_of=T0, threshold=0.5, reference_metrics={}
    )
    assert (report.scored, report.versions, report.periods) == (0, (), ())
    records = [
        LogRecord(
            f"r{i}",
            T0 + HOUR,
            "predict",
            f"C{i:04d}",
            "churn",
            "5",
            "churn_v1",
            i / 10,
            "ok",
            None,
            feature_ts=T0,
        )
        for i in range(10)
    ]
    writer = PredictionLog(directory=tmp_path / "predictions")
    writer.append(records)
    writer.close()
    log = read_prediction_log(tmp_path / "predictions").to_pandas()
    labels = labels_frame([Lab(f"C{i:04d}", T0, T0 + 2 * HOUR, int(i >= 5)) for i in range(10)])
    report = performance_on_late_labels(
        predictions=log,
        labels=labels,
        as_of=T0 + 2 * MONTH,
        threshold=0.5,
        reference_metrics={},
        min_rows=5,
        min_positives=2,
    )
    (group,) = report.versions
    assert (report.model_name, group.model_version, group.rows, group.metrics["roc_auc"]) == (
        "churn",
        "5",
        10,
        1.0,
    )
    assert group.label_lag_median_s == 3600.0


def test_training_window_reads_every_split_and_refuses_a_partial_record() -> None:
    params = {
        "window_train_start": "2024-01-01T00:00:00+00:00",
        "window_train_end": "2024-05-01T00:00:00+00:00",
        "window_validation_start": "2024-06-01T00:00:00+00:00",
        "window_validation_end": "2024-06-01T00:00:00+00:00",
        "window_test_start": "2024-07-01T00:00:00+00:00",
        "window_test_end": "2024-07-01T00:00:00+00:00",
    }
    window = training_window(params)
    assert window == TrainingWindow(
        start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 7, 1, tzinfo=UTC)
    )
    assert training_window({"other": "x"}) is None  # a run that recorded none: reported, not guessed
    with pytest.raises(Exception, match="window_test_end"):
        training_window({k: v for k, v in params.items() if k != "window_test_end"})


def test_in_sample_rows_are_left_out_and_counted_and_unknown_windows_named() -> None:
    """A backfill inside v1's training window is not live performance (issue 18)."""
    rng = np.random.default_rng(5)
    preds, labels = [], []
    for month in range(4):
        fts = T0 + month * MONTH
        for i in range(300):
            churned = int(rng.random() < 0.3)
            preds.append(
                Pred(
                    "1",
                    f"c{i}",
                    fts,
                    fts,
                    float(np.clip(0.3 + 0.4 * churned - 0.2 * rng.random(), 0, 1)),
                    "ok",
                )
            )
            labels.append(Lab(f"c{i}", fts, fts + timedelta(days=1), churned))
    window = TrainingWindow(start=T0, end=T0 + MONTH)  # the first two snapshots were learned from
    report = performance_on_late_labels(
        predictions=predictions_frame(preds),
        labels=labels_frame(labels),
        as_of=T0 + 6 * MONTH,
        threshold=0.5,
        reference_metrics={},
        training_windows={"1": window},
    )
    assert report.in_sample == 600 and report.matured == 600 and report.unknown_windows == ()
    assert [p.period for p in report.periods] == ["2026-03", "2026-04"]
    blind = performance_on_late_labels(
        predictions=predictions_frame(preds),
        labels=labels_frame(labels),
        as_of=T0 + 6 * MONTH,
        threshold=0.5,
        reference_metrics={},
    )
    assert blind.in_sample == 0 and blind.matured == 1200 and blind.unknown_windows == ("1",)
