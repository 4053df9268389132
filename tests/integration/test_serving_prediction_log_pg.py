"""The production-profile prediction log: an append-only table on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from churnops.contracts.prediction_log import LogRecord
from serving.prediction_log import PredictionLog, SqlSink

pytestmark = pytest.mark.integration


def _record(i: int) -> LogRecord:
    return LogRecord(
        request_id=f"r{i}",
        ts=datetime(2024, 5, 1, 12, i, tzinfo=UTC),
        endpoint="predict",
        customer_id=f"C{i}",
        model_name="churn",
        model_version="3",
        feature_service="churn_v1",
        score=0.5 if i % 2 == 0 else None,
        status="ok" if i % 2 == 0 else "unknown_customer",
        features={"contract": "One year", "tenure": 7, "monthly_charges": 50.5} if i % 2 == 0 else None,
    )


def test_sql_sink_appends_rows_to_postgres(postgres_url: str, tmp_path: Path) -> None:
    sink = SqlSink(postgres_url)
    written: list[int] = []
    log = PredictionLog(directory=tmp_path, sink=sink, on_written=written.append)
    log.append([_record(i) for i in range(4)])
    log.close()
    log.append([_record(4)])
    assert log.flush() == 1
    frame = sink.read()
    sink.dispose()
    assert list(frame["request_id"]) == ["r0", "r1", "r2", "r3", "r4"]
    assert written == [4, 1]
    first = frame.iloc[0]
    assert first["contract"] == "One year" and first["tenure"] == 7 and first["score"] == 0.5
    assert frame.iloc[1]["contract"] is None and frame.iloc[1]["status"] == "unknown_customer"
    assert str(first["ts"].tz) == "UTC" and not list(tmp_path.iterdir())
    # A second service process attaches to the existing table.
    again = SqlSink(postgres_url)
    other = PredictionLog(directory=tmp_path, sink=again)
    other.append([_record(5)])
    assert other.flush() == 1
    assert len(again.read()) == 6
    again.dispose()


def test_rows_the_database_refuses_are_spooled_and_replayed_none_lost(
    postgres_url: str, tmp_path: Path
) -> None:
    import sqlalchemy as sa

    from churnops.contracts.prediction_log import read_prediction_log_table

    sink = SqlSink(postgres_url)
    counts = {"written": 0, "spooled": 0, "lost": 0}
    log = PredictionLog(
        directory=tmp_path / "predictions",
        sink=sink,
        on_written=lambda n: counts.__setitem__("written", counts["written"] + n),
        on_spooled=lambda n: counts.__setitem__("spooled", counts["spooled"] + n),
        on_failure=lambda n: counts.__setitem__("lost", counts["lost"] + n),
    )
    log.append([_record(i) for i in range(3)])
    assert log.flush() == 3
    with sink.engine.begin() as conn:  # the table goes away under the service (an outage)
        conn.execute(sa.text("ALTER TABLE prediction_log RENAME TO prediction_log_away"))
    log.append([_record(i) for i in range(3, 8)])
    assert log.flush() == 0
    assert counts == {"written": 3, "spooled": 5, "lost": 0}
    assert log.spool.pending_rows() == 5
    log.append([_record(8)])
    assert log.flush() == 0  # still down: the new row joins the spool, the old ones wait
    assert log.spool.pending_rows() == 6
    with sink.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE prediction_log_away RENAME TO prediction_log"))
    log.append([_record(9)])
    assert log.flush() == 7  # the 6 spooled rows first, then the new one
    assert log.spool.pending_rows() == 0 and not log.spool.files()
    assert counts == {"written": 10, "spooled": 6, "lost": 0}
    table = read_prediction_log_table(sink.engine).to_pandas()
    assert sorted(table["request_id"]) == sorted(f"r{i}" for i in range(10))  # each row exactly once
    log.close()
    sink.dispose()


def test_rows_are_counted_lost_only_when_the_spool_cannot_take_them(
    postgres_url: str, tmp_path: Path
) -> None:
    import sqlalchemy as sa

    sink = SqlSink(postgres_url)
    blocked = tmp_path / "spool"
    blocked.write_text("a file where the spool directory should be")  # the local disk refuses too
    lost: list[int] = []
    log = PredictionLog(
        directory=tmp_path / "predictions", sink=sink, spool_dir=blocked, on_failure=lost.append
    )
    with sink.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE prediction_log"))
    log.append([_record(i) for i in range(4)])
    assert log.flush() == 0
    assert lost == [4]
    sink.dispose()
