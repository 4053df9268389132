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
