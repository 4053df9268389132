"""The prediction log: every answered row, appended to parquet partitions monitoring reads.

Layout: ``<home>/predictions/date=YYYY-MM-DD/part-<utc time>-<pid>-<random>.parquet`` (hive
partitioning; each flush writes new files, nothing is ever rewritten). Rows are buffered in
memory and written by a background thread every ``flush_seconds`` or ``flush_rows``, so a
request never waits for disk. A write the sink refuses (the SQL table unreachable, a disk error)
is spooled to local parquet and replayed when the sink takes rows again (``serving.spool``);
only rows that neither the sink nor the spool could take are dropped, and counted. A log
failure never fails a request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from churnops.contracts.columns import FEATURES, SCORE
from churnops.contracts.prediction_log import (
    COLUMNS,
    CUSTOMER_ID,
    ENDPOINT,
    FEATURE_SERVICE_NAME,
    FEATURE_TS,
    MODEL_NAME,
    MODEL_VERSION,
    REQUEST_ID,
    STATUS,
    TS,
    LogRecord,
    Sink,
    prediction_log_table,
    write_columns,
)


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


FEATURE_NAMES = tuple(c.name for c in FEATURES)
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
            _add_row(cols, shared, r, r.feature_ts)
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
        feature_times: Sequence[datetime | None],
    ) -> None:
        """The rows of one answer, sharing its request fields (no record object per row)."""
        shared = (request_id, ts, endpoint, model_name, model_version, feature_service)
        cols = self._columns(ts.date().isoformat())
        for row, feature_ts in zip(rows, feature_times, strict=True):
            _add_row(cols, shared, row, feature_ts)
        self.rows += len(rows)


_SHARED = (REQUEST_ID, TS, ENDPOINT, MODEL_NAME, MODEL_VERSION, FEATURE_SERVICE_NAME)


def _add_row(
    cols: Columns, shared: tuple[Any, ...], row: LoggedRow | LogRecord, feature_ts: datetime | None
) -> None:
    """Append one row: ``shared`` holds the values of ``_SHARED`` in that order."""
    for name, value in zip(_SHARED, shared, strict=True):
        cols[name].append(value)
    cols[FEATURE_TS].append(feature_ts)
    cols[CUSTOMER_ID].append(row.customer_id)
    cols[SCORE].append(row.score)
    cols[STATUS].append(row.status)
    features = row.features
    if features is None:
        for name in FEATURE_NAMES:
            cols[name].append(None)
    else:
        for name in FEATURE_NAMES:
            cols[name].append(features.get(name))


def parquet_sink(directory: Path) -> Sink:
    """The embedded default: parquet partitions under ``directory``."""

    def write(day: str, columns: Columns, /, *, batch_id: str | None = None) -> Path:
        return write_columns(directory=directory, day=day, columns=columns, name=batch_id)

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

    def __call__(self, day: str, columns: Columns, /, *, batch_id: str | None = None) -> int:
        """Insert the rows; with ``batch_id``, only when no row of that batch is there yet (a
        re-run of a batch is skipped: the table is append-only), checked under a lock on the id
        so two runs at once insert once."""
        import sqlalchemy as sa

        names = list(columns)
        lists = [v.to_pylist() if hasattr(v, "to_pylist") else v for v in columns.values()]
        rows = [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]
        with self.engine.begin() as conn:
            if batch_id is not None and rows:
                if conn.dialect.name == "postgresql":  # elsewhere the readers' de-duplication covers a race
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:id, 0))"), {"id": batch_id}
                    )
                present = conn.execute(
                    sa.select(self.table.c.id)
                    .where(self.table.c.ts == rows[0]["ts"], self.table.c.request_id == batch_id)
                    .limit(1)
                ).first()
                if present is not None:
                    return 0
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
        spool_dir: Path | None = None,
        on_written: Callable[[int], None] = lambda n: None,
        on_failure: Callable[[int], None] = lambda n: None,
        on_spooled: Callable[[int], None] = lambda n: None,
        warn_interval_s: float = 60.0,
    ) -> None:
        from serving.spool import Spool, ThrottledWarning

        self.directory = directory
        self._sink = sink or parquet_sink(directory)
        # Rows the sink refuses wait here (local parquet) and are replayed before each flush.
        self._warning = ThrottledWarning(interval_s=warn_interval_s)
        self.spool = Spool(spool_dir or directory.parent / f"{directory.name}-spool", warning=self._warning)
        self._on_spooled = on_spooled
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
        except Exception as error:  # never fail a request: count the rows lost and say why
            self._dropped(len(records), error)

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
        feature_times: Sequence[datetime | None],
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
                    feature_times=feature_times[:room],
                )
                full = self._batch.rows >= self._flush_rows
            self._queued(len(rows), len(accepted), full)
        except Exception as error:  # never fail a request: count the rows lost and say why
            self._dropped(len(rows), error)

    def _dropped(self, rows: int, error: Exception) -> None:
        self._on_failure(rows)
        self._warning.warn(f"prediction log append failed ({error!r}); {rows} rows dropped", error=error)

    def _queued(self, offered: int, accepted: int, full: bool) -> None:
        if accepted < offered:
            self._on_failure(offered - accepted)
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Replay the spool, then write what is buffered now; returns rows the sink took.

        A partition the sink refuses goes to the spool (counted by ``on_spooled``); only rows that
        neither the sink nor the spool could take are lost (counted by ``on_failure``).
        """
        written = 0
        if self.spool.files():
            replayed = self.spool.replay(self._sink)
            if replayed:
                self._on_written(replayed)
                written += replayed
        with self._lock:
            batch, self._batch = self._batch, LogBatch()
        for day, columns in sorted(batch.days.items()):
            rows = len(columns[REQUEST_ID])
            try:
                self._sink(day, columns)
            except Exception as error:
                try:
                    self.spool.put(day, columns)
                except Exception as spool_error:
                    self._on_failure(rows)
                    self._warning.warn(
                        f"prediction log sink ({error}) and spool ({spool_error!r}) both failed; "
                        f"{rows} rows dropped",
                        error=spool_error,
                    )
                else:
                    self._on_spooled(rows)
                    self._warning.warn(
                        f"prediction log sink failed ({error}); rows spooled to {self.spool.directory}",
                        error=error,
                    )
                continue
            self._on_written(rows)
            written += rows
        return written

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception as error:  # the flusher must outlive any one failure
                self._warning.warn(f"prediction log flush failed: {error!r}", error=error)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
