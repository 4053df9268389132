"""The prediction log: every answered row, appended to parquet partitions monitoring reads.

Layout: ``<home>/predictions/date=YYYY-MM-DD/part-<utc time>-<pid>-<random>.parquet`` (hive
partitioning; each flush writes new files, nothing is ever rewritten). Rows are buffered in
memory and written by a background thread every ``flush_seconds`` or ``flush_rows``, so a
request never waits for disk. A failed write is counted (``on_failure(rows)``) and dropped;
it never fails a request.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from churnops.contracts.columns import FEATURES
from churnops.contracts.prediction_log import COLUMNS, PARTITION, LogRecord, log_schema, prediction_log_table

Columns = dict[str, list[Any]]


class LogBatch:
    """Rows kept column by column and per date partition.

    Records are split into columns when they are appended (a few microseconds per row on the
    request path) so that a flush only hands lists to Arrow: a flush that walked thousands of
    records in Python would hold the GIL for tens of milliseconds and stall requests.
    """

    def __init__(self) -> None:
        self.days: dict[str, Columns] = {}
        self.rows = 0

    def add(self, records: Sequence[LogRecord]) -> None:
        names = [c.name for c in FEATURES]
        for r in records:
            day = r.ts.strftime("%Y-%m-%d")
            cols = self.days.get(day)
            if cols is None:
                cols = self.days[day] = {name: [] for name in COLUMNS}
            cols["request_id"].append(r.request_id)
            cols["ts"].append(r.ts)
            cols["endpoint"].append(r.endpoint)
            cols["customer_id"].append(r.customer_id)
            cols["model_name"].append(r.model_name)
            cols["model_version"].append(r.model_version)
            cols["feature_service"].append(r.feature_service)
            cols["score"].append(r.score)
            cols["status"].append(r.status)
            cols["feature_ts"].append(r.feature_ts)
            features = r.features
            for name in names:
                cols[name].append(None if features is None else features.get(name))
        self.rows += len(records)


def write_columns(*, directory: Path, day: str, columns: Columns) -> Path:
    """One new part file in the ``date=<day>`` partition (tmp file + atomic rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pydict(columns, schema=log_schema())
    partition = directory / f"{PARTITION}={day}"
    partition.mkdir(parents=True, exist_ok=True)
    stamp = table.column("ts")[0].as_py().strftime("%Y%m%dT%H%M%S%f")
    path = partition / f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


Sink = Callable[[str, Columns], object]


def parquet_sink(directory: Path) -> Sink:
    """The embedded default: parquet partitions under ``directory``."""

    def write(day: str, columns: Columns) -> Path:
        return write_columns(directory=directory, day=day, columns=columns)

    return write


class SqlSink:
    """The production profile: an append-only ``prediction_log`` table (PostgreSQL; any SQLAlchemy URL).

    One typed column per feature of the schema, indexed by time and customer; only INSERTs.
    """

    def __init__(self, url: str, *, table: str = "prediction_log") -> None:
        import sqlalchemy as sa

        self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.table = prediction_log_table(sa.MetaData(), name=table)
        self.table.metadata.create_all(self.engine, checkfirst=True)

    def __call__(self, day: str, columns: Columns) -> int:
        names = list(columns)
        lists = [v.to_pylist() if hasattr(v, "to_pylist") else v for v in columns.values()]
        rows = [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)
        return len(rows)

    def read(self) -> Any:
        import pandas as pd

        with self.engine.connect() as conn:
            return pd.read_sql(self.table.select().order_by(self.table.c.id), conn)

    def dispose(self) -> None:
        self.engine.dispose()


class PredictionLog:
    """Buffered, append-only writer with a background flusher over a sink (parquet or SQL)."""

    def __init__(
        self,
        *,
        directory: Path,
        sink: Sink | None = None,
        flush_seconds: float = 1.0,
        flush_rows: int = 5000,
        max_buffer_rows: int = 200_000,
        on_written: Callable[[int], None] = lambda n: None,
        on_failure: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.directory = directory
        self._sink = sink or parquet_sink(directory)
        self._flush_seconds = flush_seconds
        self._flush_rows = flush_rows
        self._max_buffer = max_buffer_rows
        self._on_written = on_written
        self._on_failure = on_failure
        self._batch = LogBatch()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, records: Sequence[LogRecord]) -> None:
        """Queue rows; never raises (a full buffer drops and counts)."""
        try:
            with self._lock:
                room = max(self._max_buffer - self._batch.rows, 0)
                accepted = records[:room]
                self._batch.add(accepted)
                full = self._batch.rows >= self._flush_rows
            if len(accepted) < len(records):
                self._on_failure(len(records) - len(accepted))
            if full:
                self._wake.set()
        except Exception:
            self._on_failure(len(records))

    def flush(self) -> int:
        """Write what is buffered now; returns rows written (a failed partition is counted)."""
        with self._lock:
            batch, self._batch = self._batch, LogBatch()
        written = 0
        for day, columns in sorted(batch.days.items()):
            rows = len(columns["request_id"])
            try:
                self._sink(day, columns)
            except Exception:
                self._on_failure(rows)
                continue
            self._on_written(rows)
            written += rows
        return written

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
