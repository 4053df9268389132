"""What a monitoring window reads from the prediction log (issue 18): production traffic only,
one row per version, customer and feature snapshot; a batch written twice is one copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from churnops.contracts.prediction_log import (
    BATCH_ENDPOINT,
    COLUMNS,
    MONITORED_ENDPOINTS,
    PREDICT_ENDPOINT,
    PREDICTION_KEY,
    WHAT_IF_ENDPOINT,
    batch_request_id,
    read_prediction_log,
    unique_predictions,
    write_columns,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def columns(rows: list[dict[str, object]]) -> dict[str, list[object]]:
    return {name: [row.get(name) for row in rows] for name in COLUMNS}


def row(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "request_id": "r",
        "ts": T0,
        "endpoint": PREDICT_ENDPOINT,
        "customer_id": "c1",
        "model_name": "churn",
        "model_version": "1",
        "feature_service": "churn_v1",
        "score": 0.5,
        "status": "ok",
        "feature_ts": T0 - timedelta(days=1),
    }
    return base | values


def test_a_batch_written_twice_is_one_file_and_what_if_rows_are_not_monitored(tmp_path: Path) -> None:
    batch_id = batch_request_id(model_name="churn", model_version="3", as_of=T0)
    assert batch_id == batch_request_id(model_name="churn", model_version="3", as_of=T0)
    assert batch_id != batch_request_id(model_name="churn", model_version="4", as_of=T0)
    batch = [row(request_id=batch_id, endpoint=BATCH_ENDPOINT, customer_id=f"c{i}") for i in range(5)]
    for _ in range(3):
        write_columns(directory=tmp_path, day="2026-03-01", columns=columns(batch), name=batch_id)
    write_columns(
        directory=tmp_path,
        day="2026-03-01",
        columns=columns([row(request_id="w", endpoint=WHAT_IF_ENDPOINT, customer_id=None)] * 50),
    )
    everything = read_prediction_log(tmp_path)
    assert everything.num_rows == 55
    monitored = read_prediction_log(tmp_path, endpoints=MONITORED_ENDPOINTS)
    assert monitored.num_rows == 5
    assert not list(tmp_path.rglob("*.tmp"))


keys = st.tuples(st.sampled_from(["1", "2"]), st.sampled_from(["a", "b", "c"]), st.integers(0, 2))


@settings(max_examples=100, deadline=None)
@given(drawn=st.lists(st.tuples(keys, st.integers(0, 10), st.sampled_from(["r1", "r2"])), max_size=25))
def test_unique_predictions_keeps_the_earliest_row_per_key(
    drawn: list[tuple[tuple[str, str, int], int, str]],
) -> None:
    rows = [
        row(
            model_version=version,
            customer_id=customer,
            feature_ts=T0 + timedelta(days=day),
            ts=T0 + timedelta(hours=hour),
            request_id=request,
            score=i / 100,
        )
        for i, ((version, customer, day), hour, request) in enumerate(drawn)
    ]
    frame = pd.DataFrame(rows, columns=list(row())) if rows else pd.DataFrame(columns=list(row()))
    got = unique_predictions(frame)
    # Oracle: per key, the row with the smallest (ts, request_id), the first such in row order.
    best: dict[tuple[object, ...], tuple[object, ...]] = {}
    for i, r in enumerate(rows):
        key = tuple(r[k] for k in PREDICTION_KEY)
        rank = (r["ts"], r["request_id"], i)
        if key not in best or rank < best[key]:
            best[key] = rank
    assert sorted(got["score"].tolist()) == sorted(rows[rank[2]]["score"] for rank in best.values())
    assert len(got) == len(best)


def test_sample_window_counts_every_row_and_samples_the_same_rows(tmp_path: Path) -> None:
    """The bounded reader against the plain one: the same de-duplicated rows, counted whole,
    and a seeded sample that is a subset and the same on every run."""
    from churnops.contracts.prediction_log import sample_window

    rows = []
    for i in range(300):
        rows.append(
            row(
                request_id=f"r{i % 7}", customer_id=f"c{i % 120}", ts=T0 + timedelta(minutes=i), score=i / 300
            )
        )
    rows.append(row(customer_id="what-if", endpoint=WHAT_IF_ENDPOINT))
    rows.append(row(customer_id="stale", status="stale_features", score=None))
    rows.append(row(customer_id="late", ts=T0 + timedelta(days=2)))  # outside the window
    rows.append(row(customer_id="v2", model_version="2"))
    write_columns(directory=tmp_path, day="2026-03-01", columns=columns(rows[:150]))
    write_columns(directory=tmp_path, day="2026-03-01", columns=columns(rows[150:]))
    window = {
        "start": T0,
        "end": T0 + timedelta(days=1),
        "model_name": "churn",
        "model_version": "1",
        "seed": 3,
    }
    plain = read_prediction_log(tmp_path, start=T0, end=T0 + timedelta(days=1), endpoints=MONITORED_ENDPOINTS)
    oracle = unique_predictions(plain.to_pandas())
    oracle = oracle[(oracle["model_version"] == "1") & (oracle["status"] == "ok")]
    whole = sample_window(tmp_path, max_rows=10_000, **window)
    assert whole.rows == len(oracle) == 120 and not whole.sampled
    assert sorted(zip(whole.frame["customer_id"], whole.frame["score"], strict=True)) == sorted(
        zip(oracle["customer_id"], oracle["score"], strict=True)
    )
    assert str(whole.frame["ts"].dtype) == "datetime64[us, UTC]"
    part = sample_window(tmp_path, max_rows=40, **window)
    again = sample_window(tmp_path, max_rows=40, **window)
    assert part.rows == 120 and part.sampled and len(part.frame) == 40
    assert list(part.frame["customer_id"]) == list(again.frame["customer_id"])
    assert set(part.frame["customer_id"]) <= set(oracle["customer_id"])
    other_seed = sample_window(tmp_path, max_rows=40, **(window | {"seed": 4}))
    assert set(other_seed.frame["customer_id"]) != set(part.frame["customer_id"])


def test_compaction_keeps_every_row_once_and_finishes_an_interrupted_run(tmp_path: Path) -> None:
    import shutil

    from churnops.contracts.prediction_log import compact_partition

    batch_id = batch_request_id(model_name="churn", model_version="1", as_of=T0)
    for i in range(6):
        write_columns(
            directory=tmp_path,
            day="2026-03-01",
            columns=columns(
                [
                    row(request_id=f"r{i}", customer_id=f"c{i}-{j}", ts=T0 + timedelta(seconds=i))
                    for j in range(3)
                ]
            ),
        )
    write_columns(
        directory=tmp_path, day="2026-03-01", columns=columns([row(request_id=batch_id)]), name=batch_id
    )
    partition = tmp_path / "date=2026-03-01"
    before = (
        read_prediction_log(tmp_path)
        .to_pandas()
        .sort_values(["customer_id", "request_id"])
        .reset_index(drop=True)
    )
    kept = sorted(partition.glob("part-*.parquet"))[0]
    shutil.copy(kept, tmp_path / "kept-copy")

    result = compact_partition(directory=tmp_path, day="2026-03-01")
    assert result is not None and (result.files_in, result.rows_in, result.rows_out) == (6, 18, 18)
    assert len(list(partition.glob("part-*.parquet"))) == 1 and (partition / f"{batch_id}.parquet").is_file()
    after = (
        read_prediction_log(tmp_path)
        .to_pandas()
        .sort_values(["customer_id", "request_id"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(before, after)

    # A crash after the rename but before the removal: a source file is still there.
    shutil.copy(tmp_path / "kept-copy", kept)
    again = compact_partition(directory=tmp_path, day="2026-03-01")
    assert again is not None and again.finished_earlier == 1 and again.files_in == 0
    assert read_prediction_log(tmp_path).num_rows == 19
    assert compact_partition(directory=tmp_path, day="2026-03-01") is None
