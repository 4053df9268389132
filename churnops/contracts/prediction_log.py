"""The prediction log: the record every scored row becomes, its schema, and its window reader.

Serving (``endpoint`` = ``predict`` / ``predict_features``) and batch scoring (``batch``) write
the same record; monitoring reads windows of it. ``ts`` is when the prediction counts as made
(for batch scoring: the as-of time, so backfills and replays line up with labels and windows);
``feature_ts`` is the event time of the feature snapshot used (the newest of the views' event
times), which is what a later label of that snapshot joins on.

Layout on the embedded default: ``<home>/predictions/date=YYYY-MM-DD/part-*.parquet`` (hive
partitions by the UTC date of ``ts``; files are only ever added). The production profile keeps
the same columns in an append-only SQL table (:func:`prediction_log_table`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from churnops.contracts.columns import FEATURES, JOIN_KEY, SCORE, TS_TYPE, arrow_type

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

PARTITION = "date"
PREDICT_ENDPOINT = "predict"
"""Serving scored customers by id with their online features: production traffic."""
WHAT_IF_ENDPOINT = "predict_features"
"""Serving scored rows the caller made up (what-if): logged, never monitored."""
BATCH_ENDPOINT = "batch"
"""Batch scoring of the active customers at an as-of time: production traffic."""
ENDPOINTS = (PREDICT_ENDPOINT, WHAT_IF_ENDPOINT, BATCH_ENDPOINT)
MONITORED_ENDPOINTS = (PREDICT_ENDPOINT, BATCH_ENDPOINT)
"""What a drift or performance window reads: anyone with an API key can send what-if rows, so
those would let a caller fire (or mask) a drift retrain."""
REQUEST_ID = "request_id"
TS = "ts"
"""When the prediction counts as made (module docstring)."""
ENDPOINT = "endpoint"
CUSTOMER_ID = JOIN_KEY
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
FEATURE_SERVICE_NAME = "feature_service"
"""The column holding the name of the Feast feature service the row was scored with."""
STATUS = "status"
"""The row's :class:`~churnops.contracts.online.RowStatus` value."""
FEATURE_TS = "feature_ts"
"""The event time of the feature snapshot scored (module docstring)."""

PREDICTION_KEY = (MODEL_VERSION, CUSTOMER_ID, FEATURE_TS)
"""One prediction per version, customer and feature snapshot in a monitoring window: a customer
scored twice on the same features (a repeated request, a batch re-run) counts once."""
BATCH_FILE_PREFIX = "batch-"


@dataclass(frozen=True)
class LogColumn:
    """One column of the log: its name, its Arrow type (the parquet files and every reader's
    result; the SQL table's type derives from it, :func:`sql_type`), whether the SQL table
    refuses a null in it, and whether the SQL table indexes it."""

    name: str
    type: pa.DataType
    required: bool = False
    indexed: bool = False


BASE_LOG_COLUMNS: tuple[LogColumn, ...] = (
    LogColumn(REQUEST_ID, pa.string(), required=True),
    LogColumn(TS, TS_TYPE, required=True, indexed=True),
    LogColumn(ENDPOINT, pa.string(), required=True),
    LogColumn(CUSTOMER_ID, pa.string(), indexed=True),
    LogColumn(MODEL_NAME, pa.string(), required=True),
    LogColumn(MODEL_VERSION, pa.string(), required=True),
    LogColumn(FEATURE_SERVICE_NAME, pa.string(), required=True),
    LogColumn(SCORE, pa.float64()),
    LogColumn(STATUS, pa.string(), required=True),
    LogColumn(FEATURE_TS, TS_TYPE),
)
"""The columns every record has, in order; then one per feature (:data:`LOG_COLUMNS`)."""
LOG_COLUMNS: tuple[LogColumn, ...] = (
    *BASE_LOG_COLUMNS,
    *(LogColumn(c.name, arrow_type(c)) for c in FEATURES),
)
"""The log's one column list: the schema, the SQL table, batch scoring's and serving's writers
and the monitoring readers all derive from it."""
BASE_COLUMNS = tuple(c.name for c in BASE_LOG_COLUMNS)
COLUMNS = tuple(c.name for c in LOG_COLUMNS)


@dataclass(frozen=True)
class ParquetRows:
    """Rows DuckDB reads straight from parquet files (only the columns a query names): ``where``
    (SQL over the files' columns, user values as ``$`` parameters in ``params``) keeps some.
    (Re-exported by :mod:`churnops.contracts.monitoring_terms`, whose label join reads it.)"""

    files: tuple[str, ...]
    where: str = "true"
    params: Mapping[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    """Where log rows go: takes one ``date=`` partition's columns (every name of :data:`COLUMNS`).
    ``batch_id`` (a batch run's request id, :func:`batch_request_id`) makes the write idempotent:
    writing the same batch again replaces it (parquet) or is skipped (SQL)."""

    def __call__(self, day: str, columns: Any, /, *, batch_id: str | None = None) -> object: ...


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One answered row (scored or not: ``status`` says why there is no score)."""

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
    feature_ts: datetime | None = None


def log_schema() -> pa.Schema:
    """The Arrow schema of the log (parquet files and every reader's result): :data:`LOG_COLUMNS`."""
    return pa.schema([pa.field(c.name, c.type) for c in LOG_COLUMNS])


def sql_type(arrow: pa.DataType) -> Any:
    """The SQLAlchemy type a log column of Arrow type ``arrow`` is stored as in the SQL table."""
    import sqlalchemy as sa

    if pa.types.is_timestamp(arrow):
        return sa.DateTime(timezone=True)
    if pa.types.is_string(arrow):
        return sa.Text
    if pa.types.is_int64(arrow):
        return sa.BigInteger
    if pa.types.is_float64(arrow):
        return sa.Float
    raise TypeError(f"no SQL type for a prediction-log column of Arrow type {arrow}")


def prediction_log_table(metadata: sa.MetaData, *, name: str = "prediction_log") -> sa.Table:
    """The same record as an append-only SQL table (PostgreSQL in production): :data:`LOG_COLUMNS`
    after a surrogate ``id``."""
    import sqlalchemy as sa

    return sa.Table(
        name,
        metadata,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        *(
            sa.Column(c.name, sql_type(c.type), nullable=not c.required, index=c.indexed or None)
            for c in LOG_COLUMNS
        ),
    )


def batch_request_id(*, model_name: str, model_version: str, as_of: datetime) -> str:
    """The request id of a batch run: one per (model, version, as-of), so a re-run is the same
    request and replaces its rows instead of adding a second copy."""
    when = as_of.astimezone(UTC)
    return f"{BATCH_FILE_PREFIX}{model_name}-v{model_version}-{when:%Y%m%dT%H%M%S%f}Z"


def write_columns(*, directory: Path, day: str, columns: Mapping[str, Any], name: str | None = None) -> Path:
    """One part file in the ``date=<day>`` partition (tmp file + atomic rename).

    ``columns`` maps every name of :data:`COLUMNS` to a list or an Arrow array of equal length.
    ``name`` (a batch run's request id) makes the file name fixed: writing it again replaces it
    whole, so two runs of one batch (even at once) leave one copy.
    """
    import pyarrow.parquet as pq

    table = pa.Table.from_pydict(columns, schema=log_schema())
    partition = directory / f"{PARTITION}={day}"
    partition.mkdir(parents=True, exist_ok=True)
    if name is not None:
        path = partition / f"{name}.parquet"
    else:
        stamp = table.column(TS)[0].as_py().strftime("%Y%m%dT%H%M%S%f")
        path = partition / f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def _utc(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got {value.isoformat()}")
    return value


COMPACTED_FROM = b"churnops.compacted_from"
"""Parquet metadata key of a compacted file: the names of the part files it replaces."""


@dataclass(frozen=True)
class CompactionResult:
    """One partition: how many part files became one, and the rows, counted on both sides."""

    day: str
    files_in: int
    rows_in: int
    rows_out: int
    finished_earlier: int
    """Part files of an interrupted compaction, already inside a compacted file, now removed."""


def compact_partition(*, directory: Path, day: str, min_files: int = 2) -> CompactionResult | None:
    """Merge the small ``part-*`` files of one ``date=`` partition into one, without losing or
    doubling a row: safe while serving adds files (only the files listed at the start are merged;
    new ones stay) and after a crash at any point.

    The merged file is written beside them (tmp file + atomic rename) carrying the names it
    replaces in its metadata; only after its row count equals the sum of theirs are they removed.
    A crash between the rename and the removal leaves both: the next compaction first removes the
    part files that a compacted file already holds (readers de-duplicate meanwhile). Batch files
    (``batch-*``) are left alone: a batch re-run replaces its own file by name.
    """
    import pyarrow.parquet as pq

    partition = directory / f"{PARTITION}={day}"
    finished = 0
    for compacted in sorted(partition.glob("part-compact-*.parquet")):
        meta = pq.read_schema(compacted).metadata or {}
        for name in meta.get(COMPACTED_FROM, b"").decode().split("\n"):
            leftover = partition / name
            if name and leftover.is_file():
                leftover.unlink()
                finished += 1
    parts = sorted(partition.glob("part-*.parquet"))
    if len(parts) < min_files:
        return None if not finished else CompactionResult(day, 0, 0, 0, finished)
    tables = [pq.read_table(part, schema=log_schema()) for part in parts]
    rows_in = sum(t.num_rows for t in tables)
    merged = pa.concat_tables(tables).sort_by([(TS, "ascending")])
    names = "\n".join(part.name for part in parts)
    merged = merged.replace_schema_metadata(
        {**(merged.schema.metadata or {}), COMPACTED_FROM: names.encode()}
    )
    stamp = merged.column(TS)[0].as_py().strftime("%Y%m%dT%H%M%S%f") if rows_in else "empty"
    path = partition / f"part-compact-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    pq.write_table(merged, tmp)
    rows_out = pq.read_metadata(tmp).num_rows
    if rows_out != rows_in:
        tmp.unlink()
        raise RuntimeError(f"compacting {partition}: wrote {rows_out} rows for {rows_in}; nothing changed")
    tmp.replace(path)
    for part in parts:
        part.unlink()
    return CompactionResult(day, len(parts), rows_in, rows_out, finished)


def _window_files(root: Path, *, lower: datetime | None, upper: datetime | None) -> list[str]:
    """The part files of the ``date=`` partitions that can hold ``[lower, upper)``."""
    if not root.is_dir():
        return []
    keep = []
    for partition in sorted(p for p in root.glob(f"{PARTITION}=*") if p.is_dir()):
        day = partition.name.split("=", 1)[1]
        if lower is not None and day < f"{lower.astimezone(UTC):%Y-%m-%d}":
            continue
        if upper is not None and day > f"{upper.astimezone(UTC):%Y-%m-%d}":
            continue
        keep.extend(sorted(str(f) for f in partition.glob("*.parquet")))
    return keep


@dataclass(frozen=True)
class WindowSample:
    """A monitoring window's rows counted whole, and at most ``max_rows`` of them (all when fewer)."""

    rows: int
    frame: pd.DataFrame

    @property
    def sampled(self) -> bool:
        return len(self.frame) < self.rows


def sample_window(
    directory: str | Path,
    *,
    start: datetime,
    end: datetime,
    model_name: str,
    model_version: str,
    max_rows: int,
    seed: int,
    scored_only: bool = True,
    memory_limit: str = "512MB",
) -> WindowSample:
    """The monitored rows (:data:`MONITORED_ENDPOINTS`, one per :data:`PREDICTION_KEY`) of a
    window of the parquet log, in memory bounded by the sample, not by the window.

    DuckDB scans the window's partitions twice (filters pushed into the parquet scan): first one
    hash per prediction key (version, customer, feature time, seed), de-duplicated in an aggregate
    that spills to disk past ``memory_limit``, which counts the keys and finds the cut below which
    the ``max_rows`` smallest hashes lie; then the rows of those keys only, one per key. A seeded
    sample, the same rows on every run and thread count, and memory bounded by the sample.
    ``scored_only`` keeps ``ok`` rows with a score (what drift compares).
    """
    import shutil
    import tempfile

    import duckdb

    lower, upper = _utc(start, "start"), _utc(end, "end")
    files = _window_files(Path(directory), lower=lower, upper=upper)
    schema = log_schema()
    if not files:
        return WindowSample(rows=0, frame=schema.empty_table().to_pandas())
    spill = tempfile.mkdtemp(prefix="churnops-window-")
    try:
        con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill})
        try:
            scored = "AND status = 'ok' AND score IS NOT NULL" if scored_only else ""
            endpoints = ", ".join(f"'{e}'" for e in MONITORED_ENDPOINTS)
            key = ", ".join(PREDICTION_KEY)
            # integers only are formatted into the text; every user value is a parameter
            digest = f"hash(concat_ws('|', model_version, customer_id, epoch_us(feature_ts), {int(seed)}))"
            source = f"""read_parquet($files, union_by_name = true)
                WHERE ts >= $lower AND ts < $upper AND model_name = $name AND model_version = $version
                  AND endpoint IN ({endpoints}) {scored}"""
            values = {
                "files": files,
                "lower": lower,
                "upper": upper,
                "name": model_name,
                "version": str(model_version),
            }
            # 1. one hash per prediction key (a spilling aggregate of one integer column): the
            #    count, and the cut below which the max_rows smallest hashes lie.
            con.execute(
                f"CREATE TEMP TABLE window_keys AS SELECT DISTINCT {digest} AS h FROM {source}", values
            )
            ((rows,),) = con.execute("SELECT count(*) FROM window_keys").fetchall()
            ((cut,),) = con.execute(
                f"SELECT max(h) FROM (SELECT h FROM window_keys ORDER BY h LIMIT {int(max_rows)})"
            ).fetchall()
            # 2. the rows of those keys, one per key (the earliest): at most max_rows of them.
            query = f"SELECT DISTINCT ON ({key}) * FROM {source} AND {digest} <= $cut"
            query += f" ORDER BY {key}, ts, request_id"
            table = (
                con.sql(query, params=values | {"cut": cut}).to_arrow_table()
                if rows
                else schema.empty_table()
            )
        finally:
            con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    present = [name for name in schema.names if name in table.column_names]
    table = table.select(present).cast(pa.schema([schema.field(name) for name in present]))
    return WindowSample(rows=rows, frame=table.to_pandas())


def window_rows(
    directory: str | Path,
    *,
    start: datetime,
    end: datetime,
    model_name: str,
    model_version: str | None,
) -> ParquetRows | None:
    """The monitored rows of a window of the parquet log, for DuckDB to read in place: the
    window's ``date=`` partitions, filtered on time, model, version and endpoint (None: no file)."""
    lower, upper = _utc(start, "start"), _utc(end, "end")
    files = _window_files(Path(directory), lower=lower, upper=upper)
    if not files:
        return None
    endpoints = ", ".join(f"'{e}'" for e in MONITORED_ENDPOINTS)
    where = f"ts >= $lower AND ts < $upper AND model_name = $name AND endpoint IN ({endpoints})"
    params: dict[str, Any] = {"lower": lower, "upper": upper, "name": model_name}
    if model_version is not None:
        where += " AND model_version = $version"
        params["version"] = str(model_version)
    return ParquetRows(files=tuple(files), where=where, params=params)


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """``table`` as pandas with its strings left in Arrow (``string[pyarrow]``): millions of ids
    cost their bytes, not a Python object each. The table's buffers are released as it converts."""
    import pandas as pd

    strings = pd.StringDtype("pyarrow")
    frame: pd.DataFrame = table.to_pandas(
        types_mapper=lambda t: strings if pa.types.is_string(t) or pa.types.is_large_string(t) else None,
        self_destruct=True,
        split_blocks=True,
    )
    return frame


def read_prediction_log(
    directory: str | Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    endpoints: tuple[str, ...] | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """The rows with ``start <= ts < end`` (either bound optional) as one Arrow table.

    Only the ``date=`` partitions that can hold the window are opened (partition pruning), and
    the filters are pushed down to the parquet scan, so a window of a large log costs what it
    holds. Files written before a column existed read it as null.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    schema = log_schema()
    lower, upper = _utc(start, "start"), _utc(end, "end")
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns])
    keep = _window_files(Path(directory), lower=lower, upper=upper)
    if not keep:
        return schema.empty_table()
    dataset = ds.dataset(keep, schema=log_schema(), format="parquet")
    condition = None
    for part in (
        None if lower is None else pc.field(TS) >= pa.scalar(lower, TS_TYPE),
        None if upper is None else pc.field(TS) < pa.scalar(upper, TS_TYPE),
        None if model_name is None else pc.field(MODEL_NAME) == model_name,
        None if model_version is None else pc.field(MODEL_VERSION) == str(model_version),
        None if endpoints is None else pc.field(ENDPOINT).isin(list(endpoints)),
    ):
        if part is not None:
            condition = part if condition is None else condition & part
    return dataset.to_table(filter=condition, columns=columns)


def unique_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a monitoring window with one row per :data:`PREDICTION_KEY` (the earliest, by
    ``ts`` then ``request_id``): a repeated request or a second batch run adds nothing."""
    if frame.empty:
        return frame
    ordered = frame.sort_values([TS, REQUEST_ID], kind="stable")
    return ordered.drop_duplicates(list(PREDICTION_KEY), keep="first").sort_index()


def read_prediction_log_table(
    engine: sa.Engine,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    endpoints: tuple[str, ...] | None = None,
    table: str = "prediction_log",
    columns: list[str] | None = None,
) -> pa.Table:
    """The same window as :func:`read_prediction_log`, from the SQL table (indexed on ``ts``)."""
    import sqlalchemy as sa

    lower, upper = _utc(start, "start"), _utc(end, "end")
    log = prediction_log_table(sa.MetaData(), name=table)
    names = list(columns or COLUMNS)
    query = sa.select(*(log.c[name] for name in names))
    if lower is not None:
        query = query.where(log.c[TS] >= lower)
    if upper is not None:
        query = query.where(log.c[TS] < upper)
    if model_name is not None:
        query = query.where(log.c[MODEL_NAME] == model_name)
    if model_version is not None:
        query = query.where(log.c[MODEL_VERSION] == str(model_version))
    if endpoints is not None:
        query = query.where(log.c[ENDPOINT].in_(endpoints))
    with engine.connect() as conn:
        schema = pa.schema([log_schema().field(name) for name in names])
        if not sa.inspect(conn).has_table(table):
            return schema.empty_table()
        rows = conn.execute(query.order_by(log.c.id)).all()
    values = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    return pa.Table.from_pydict(values, schema=schema)
