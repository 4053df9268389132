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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from churnops.schema import FEATURES

PARTITION = "date"


@dataclass(frozen=True)
class LogRecord:
    request_id: str
    ts: datetime
    endpoint: str
    customer_id: str | None
    model_name: str
    model_version: str
    feature_service: str
    score: float | None
    status: str
    features: dict[str, Any] | None


class LoggedRow(Protocol):
    """What one answered row contributes to its log record (``serving.scoring.Scored`` is one)."""

    @property
    def customer_id(self) -> str | None: ...
    @property
    def features(self) -> dict[str, Any] | None: ...
    @property
    def score(self) -> float | None: ...
    @property
    def status(self) -> str: ...


def log_schema() -> Any:
    import pyarrow as pa

    from churnops.sources import arrow_type

    return pa.schema(
        [
            pa.field("request_id", pa.string()),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("endpoint", pa.string()),
            pa.field("customer_id", pa.string()),
            pa.field("model_name", pa.string()),
            pa.field("model_version", pa.string()),
            pa.field("feature_service", pa.string()),
            pa.field("score", pa.float64()),
            pa.field("status", pa.string()),
            *(pa.field(c.name, arrow_type(c)) for c in FEATURES),
        ]
    )


BASE_COLUMNS = (
    "request_id",
    "ts",
    "endpoint",
    "customer_id",
    "model_name",
    "model_version",
    "feature_service",
    "score",
    "status",
)
FEATURE_NAMES = tuple(c.name for c in FEATURES)
COLUMNS = (*BASE_COLUMNS, *FEATURE_NAMES)
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

    def _columns(self, day: str) -> Columns:
        cols = self.days.get(day)
        if cols is None:
            cols = self.days[day] = {name: [] for name in COLUMNS}
        return cols

    def add(self, records: Sequence[LogRecord]) -> None:
        last_ts: datetime | None = None
        cols: Columns = {}
        for r in records:
            if r.ts != last_ts:  # the rows of one request share their time: find the day once
                last_ts, cols = r.ts, self._columns(r.ts.date().isoformat())
            shared = (r.request_id, r.ts, r.endpoint, r.model_name, r.model_version, r.feature_service)
            _add_row(cols, shared, r)
        self.rows += len(records)

    def add_request(
        self,
        *,
        request_id: str,
        ts: datetime,
        endpoint: str,
        model_name: str,
        model_version: str,
        feature_service: str,
        rows: Sequence[LoggedRow],
    ) -> None:
        """The rows of one answer, sharing its request fields (no record object per row)."""
        shared = (request_id, ts, endpoint, model_name, model_version, feature_service)
        cols = self._columns(ts.date().isoformat())
        for row in rows:
            _add_row(cols, shared, row)
        self.rows += len(rows)


_SHARED = ("request_id", "ts", "endpoint", "model_name", "model_version", "feature_service")


def _add_row(cols: Columns, shared: tuple[Any, ...], row: LoggedRow | LogRecord) -> None:
    """Append one row: ``shared`` holds the values of ``_SHARED`` in that order."""
    for name, value in zip(_SHARED, shared, strict=True):
        cols[name].append(value)
    cols["customer_id"].append(row.customer_id)
    cols["score"].append(row.score)
    cols["status"].append(row.status)
    features = row.features
    if features is None:
        for name in FEATURE_NAMES:
            cols[name].append(None)
    else:
        for name in FEATURE_NAMES:
            cols[name].append(features.get(name))


def write_columns(*, directory: Path, day: str, columns: Columns) -> Path:
    """One new part file in the ``date=<day>`` partition (tmp file + atomic rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pydict(columns, schema=log_schema())
    partition = directory / f"{PARTITION}={day}"
    partition.mkdir(parents=True, exist_ok=True)
    stamp = columns["ts"][0].strftime("%Y%m%dT%H%M%S%f")
    path = partition / f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def write_records(*, directory: Path, records: Sequence[LogRecord]) -> list[Path]:
    """Write records as new part files, one per date partition."""
    batch = LogBatch()
    batch.add(records)
    return [
        write_columns(directory=directory, day=day, columns=cols) for day, cols in sorted(batch.days.items())
    ]


def read_prediction_log(directory: Path) -> Any:
    """Every logged row as a pandas DataFrame, with the ``date`` partition as a column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = log_schema()
    tables = []
    for path in sorted(directory.glob(f"{PARTITION}=*/*.parquet")):
        table = pq.read_table(path, schema=schema)
        day = path.parent.name.split("=", 1)[1]
        tables.append(table.append_column(PARTITION, pa.array([day] * table.num_rows, pa.string())))
    if not tables:
        return schema.append(pa.field(PARTITION, pa.string())).empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


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
        rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)
        return len(rows)

    def read(self) -> Any:
        import pandas as pd

        with self.engine.connect() as conn:
            return pd.read_sql(self.table.select().order_by(self.table.c.id), conn)

    def dispose(self) -> None:
        self.engine.dispose()


def prediction_log_table(metadata: Any, *, name: str = "prediction_log") -> Any:
    import sqlalchemy as sa

    types = {"category": sa.Text, "flag": sa.BigInteger, "int": sa.BigInteger, "float": sa.Float}
    return sa.Table(
        name,
        metadata,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, index=True),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("feature_service", sa.Text, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("status", sa.Text, nullable=False),
        *(sa.Column(c.name, types[c.kind]) for c in FEATURES),
    )


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
            self._queued(len(records), len(accepted), full)
        except Exception:
            self._on_failure(len(records))

    def append_request(
        self,
        *,
        request_id: str,
        ts: datetime,
        endpoint: str,
        model_name: str,
        model_version: str,
        feature_service: str,
        rows: Sequence[LoggedRow],
    ) -> None:
        """Queue the rows of one answer (what ``append`` does, without a record object per row)."""
        try:
            with self._lock:
                room = max(self._max_buffer - self._batch.rows, 0)
                accepted = rows[:room]
                self._batch.add_request(
                    request_id=request_id,
                    ts=ts,
                    endpoint=endpoint,
                    model_name=model_name,
                    model_version=model_version,
                    feature_service=feature_service,
                    rows=accepted,
                )
                full = self._batch.rows >= self._flush_rows
            self._queued(len(rows), len(accepted), full)
        except Exception:
            self._on_failure(len(rows))

    def _queued(self, offered: int, accepted: int, full: bool) -> None:
        if accepted < offered:
            self._on_failure(offered - accepted)
        if full:
            self._wake.set()

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
