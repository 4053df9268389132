"""The monitoring vocabulary (churnops.contracts.monitoring_terms) against brute-force oracles:
the matured labels of a window counted in place from the parquet log and from frames (the SQL
log's path), the drifted share and the drifted windows in a row."""

from __future__ import annotations

import random
import tempfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from churnops.contracts.columns import LABEL_SOURCE
from churnops.contracts.monitoring_terms import (
    MonitoringCounts,
    ParquetRows,
    count_matured_labels,
    drifted_share,
    drifted_windows,
    is_drifted_window,
    labels_window,
)
from churnops.contracts.prediction_log import (
    BATCH_ENDPOINT,
    COLUMNS,
    MONITORED_ENDPOINTS,
    PREDICT_ENDPOINT,
    WHAT_IF_ENDPOINT,
    read_prediction_log,
    window_rows,
    write_columns,
)
from churnops.contracts.sources import source_schema
from monitoring.performance import matured_outcomes

T0 = datetime(2026, 3, 1, tzinfo=UTC)
END = T0 + timedelta(days=2)

# Few keys and mostly usable rows, so repeats of one key (the earliest must win) are common.
CHOICES: dict[str, list[object]] = {
    "model_version": ["1", "2", "1"],
    "customer_id": ["a", "b", "a", "b", None],
    "feature_day": [0, 1, 0, None],
    "hour": [0, 5, 20, 30, -2, 50],  # some before the window, some after it
    "request_id": ["r1", "r2", "r3"],
    "endpoint": [PREDICT_ENDPOINT, BATCH_ENDPOINT, PREDICT_ENDPOINT, WHAT_IF_ENDPOINT],
    "status": ["ok", "ok", "ok", "stale_features"],
    "scored": [True, True, True, False],
    "model_name": ["churn", "churn", "churn", "other"],
}


def _draw(seed: int, n: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [{name: rng.choice(values) for name, values in CHOICES.items()} for _ in range(n)]


def _log_row(drawn: dict[str, object]) -> dict[str, object]:
    """One log row; its score names the row, so two rows with one key, time and request id (the
    same prediction written twice) are the same row."""
    day = drawn["feature_day"]
    name = "|".join(
        str(drawn[k]) for k in ("model_version", "customer_id", "feature_day", "hour", "request_id")
    )
    return {
        "request_id": drawn["request_id"],
        "ts": T0 + timedelta(hours=int(drawn["hour"])),  # type: ignore[call-overload]
        "endpoint": drawn["endpoint"],
        "customer_id": drawn["customer_id"],
        "model_name": drawn["model_name"],
        "model_version": drawn["model_version"],
        "feature_service": "churn_v1",
        "score": (zlib.crc32(name.encode()) % 10_000 + 1) / 10_001 if drawn["scored"] else None,
        "status": drawn["status"],
        "feature_ts": None if day is None else T0 - timedelta(days=int(day)),  # type: ignore[call-overload]
    }


def _window(rows: list[dict[str, object]], version: str | None) -> dict[tuple[object, ...], int]:
    """Row by row: the window's predictions, the earliest (ts, then the row) per key -> its row."""
    best: dict[tuple[object, ...], tuple[object, ...]] = {}
    for i, r in enumerate(rows):
        if not (
            T0 <= r["ts"] < END  # type: ignore[operator]
            and r["model_name"] == "churn"
            and (version is None or r["model_version"] == version)
            and r["endpoint"] in (PREDICT_ENDPOINT, BATCH_ENDPOINT)
            and r["status"] == "ok"
            and r["score"] is not None
            and r["customer_id"] is not None
            and r["feature_ts"] is not None
        ):
            continue
        key = (r["model_version"], r["customer_id"], r["feature_ts"])
        rank = (r["ts"], r["score"], i)
        if key not in best or rank < best[key]:
            best[key] = rank
    return {key: int(rank[2]) for key, rank in best.items()}  # type: ignore[call-overload]


def _matured(
    rows: list[dict[str, object]],
    labels: list[dict[str, object]],
    *,
    version: str | None,
    as_of: datetime,
    horizon: timedelta,
    fitted: tuple[datetime, datetime] | None,
) -> set[tuple[object, ...]]:
    """Row by row: of the window's predictions, those out of the training window, past their
    horizon, with a label known at as_of (the latest known; of equal times, the later row)."""
    out = set()
    for (v, customer, snapshot), i in _window(rows, version).items():
        if fitted is not None and v == "1" and fitted[0] <= snapshot <= fitted[1]:  # type: ignore[operator]
            continue
        if snapshot + horizon > as_of:  # type: ignore[operator]
            continue
        known = [
            (lab["created"], j, lab["churned"])
            for j, lab in enumerate(labels)
            if lab["customer_id"] == customer
            and lab["event_timestamp"] == snapshot
            and lab["created"] <= as_of  # type: ignore[operator]
        ]
        if known:
            out.add((v, customer, snapshot, rows[i]["ts"], rows[i]["score"], max(known)[2]))
    return out


def _rows_of(table: pa.Table) -> set[tuple[object, ...]]:
    frame = table.to_pandas()
    return {
        (
            r.model_version,
            r.customer_id,
            r.feature_ts.to_pydatetime(),
            r.ts.to_pydatetime(),
            r.score,
            r.churned,
        )
        for r in frame.itertuples()
    }


@dataclass(frozen=True)
class Fitted:
    start: datetime
    end: datetime


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 60),
    version=st.sampled_from(["1", None]),
    horizon_days=st.sampled_from([0, 2]),
    in_sample=st.booleans(),
)
def test_matured_labels_match_the_oracle_read_in_place_and_from_frames(
    seed: int, n: int, version: str | None, horizon_days: int, in_sample: bool
) -> None:
    rows = [_log_row(d) for d in _draw(seed, n)]
    rng = random.Random(seed + 1)
    labels = [
        {
            "customer_id": customer,
            "event_timestamp": T0 - timedelta(days=day),
            "created": T0 + timedelta(hours=rng.choice([-30, 10, 40, 10])),  # ties, and not known yet
            "churned": rng.choice([0, 1]),
        }
        for customer in ("a", "b")
        for day in (0, 1)
        for _ in range(rng.choice([0, 1, 2, 3]))
    ]
    rng.shuffle(labels)
    as_of, horizon = T0 + timedelta(days=1), timedelta(days=horizon_days)  # day 1 + 2 days: just matured
    fitted = (T0 - timedelta(days=1), T0 - timedelta(days=1)) if in_sample else None
    windows = {"1": Fitted(*fitted)} if fitted else {}
    expected = _matured(rows, labels, version=version, as_of=as_of, horizon=horizon, fitted=fitted)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        by_day: dict[str, list[dict[str, object]]] = {}
        for r in rows:
            by_day.setdefault(f"{r['ts']:%Y-%m-%d}", []).append(r)  # the hive partition of its ts
        for day, part in by_day.items():
            write_columns(directory=root, day=day, columns={c: [r.get(c) for r in part] for c in COLUMNS})
        label_file = root / "labels.parquet"
        table = pa.Table.from_pylist(labels, schema=source_schema(LABEL_SOURCE))
        pq.write_table(table, label_file)
        common = {"as_of": as_of, "horizon": horizon, "training_windows": windows}
        in_place = window_rows(root, start=T0, end=END, model_name="churn", model_version=version)
        read = (
            count_matured_labels(predictions=in_place, labels=ParquetRows(files=(str(label_file),)), **common)
            if in_place is not None
            else None
        )
        # the SQL log's path: the window read whole (Arrow), the labels as a frame
        log = read_prediction_log(
            root, start=T0, end=END, model_name="churn", model_version=version, endpoints=MONITORED_ENDPOINTS
        )
        sampled = (
            count_matured_labels(
                predictions=in_place, labels=ParquetRows(files=(str(label_file),)), sample=1, **common
            )
            if in_place is not None
            else None
        )
        framed = matured_outcomes(predictions=log.to_pandas(), labels=table.to_pandas(), **common)  # type: ignore[arg-type]
    assert {(*r[:5], int(r[5])) for r in _rows_of(pa.Table.from_pandas(framed.frame))} == expected
    assert framed.matured_labels == len(expected) == len(framed.frame)
    window = _window(rows, version)
    assert framed.duplicates == framed.scored - len(window)
    if read is None:
        assert not expected and not window
        return
    assert _rows_of(read.table) == expected and read.matured_labels == len(expected)
    assert (read.scored, read.duplicates, read.in_sample, read.immature, read.unlabelled) == (
        framed.scored,
        framed.duplicates,
        framed.in_sample,
        framed.immature,
        framed.unlabelled,
    )
    ordered = read.table.to_pandas()
    assert ordered.equals(ordered.sort_values(["model_version", "ts", "score", "customer_id", "feature_ts"]))
    if len(expected) > 1:
        assert sampled is not None and sampled.matured_labels == len(expected)
        assert sampled.table.num_rows == 1 and _rows_of(sampled.table) <= expected


@settings(max_examples=200, deadline=None)
@given(statuses=st.lists(st.sampled_from(["drift", "no_drift", "insufficient_data"]), max_size=8))
def test_drifted_windows_count_the_newest_drifted_reports_in_a_row(statuses: list[str]) -> None:
    expected = 0
    while expected < len(statuses) and statuses[len(statuses) - 1 - expected] == "drift":
        expected += 1
    assert drifted_windows(statuses) == expected
    assert [is_drifted_window(s) for s in statuses] == [s == "drift" for s in statuses]


def test_drifted_share_counts_scored_features_only() -> None:
    assert drifted_share([True, False, None, None]) == 0.5
    assert drifted_share([None, None]) == 0.0  # nothing scored (insufficient_data)
    assert drifted_share([]) == 0.0
    assert drifted_share([True] + [False] * 18) == 1 / 19


def test_the_labels_window_reaches_a_horizon_back_and_counts_print_their_names() -> None:
    start, end = labels_window(start=T0, end=END, horizon=timedelta(days=31))
    assert (start, end) == (T0 - timedelta(days=31), END)
    counts = MonitoringCounts(
        model_version="3",
        matured_labels=3439,
        as_of=END,
        labels_start=start,
        labels_end=end,
        drifted_share=1 / 19,
        drifted_windows=1,
    )
    doc = counts.to_json()
    assert (doc["matured_labels"], doc["drifted_share"], doc["drifted_windows"]) == (3439, 1 / 19, 1)
    assert counts.text() == (
        "v3: matured labels 3,439 (predictions 2026-01-29 00:00 .. 2026-03-03 00:00, known at "
        "2026-03-03 00:00); drifted share 0.0526; drifted windows 1 (in a row)"
    )
