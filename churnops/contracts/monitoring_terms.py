"""The monitoring vocabulary, defined once: a matured label, the drifted share, a drifted window.

``churnops monitor drift``, ``monitor performance``, ``retrain check`` and the Pushgateway export
count with these functions and print the counts under these names (:data:`TERMS`), so the same
window, version and as-of time give the same numbers everywhere (docs/monitoring.md,
"One vocabulary").

- **a window's predictions**: the production traffic of one model version (``predict`` and
  ``batch``, :data:`~churnops.contracts.prediction_log.MONITORED_ENDPOINTS`: the readers,
  ``window_rows`` and ``churnops.wiring.prediction_window_rows``, keep only those) made in
  ``[start, end)``, scored (status ``ok`` with a score, a customer id and a feature time), one
  per version, customer and feature snapshot
  (:data:`~churnops.contracts.prediction_log.PREDICTION_KEY`: the earliest by time, then score);
- **a matured label**: one of those predictions whose label horizon has passed at ``as_of``
  (``feature_ts + horizon <= as_of``), whose label was known then (``created <= as_of``; of
  several label rows the latest known wins), and whose snapshot is not inside its version's
  training window (in-sample: what the model learned from is no evidence of live performance);
- **the labels window** of a drift report on ``[start, end)``: its matured labels are those of
  the predictions made in ``[start - horizon, end)`` (:func:`labels_window`), since a window's own
  predictions mature only a horizon after it;
- **the drifted share** of one window: the share of the monitored features (those with a score
  on both sides) whose drift score reached their threshold; 0 when none could be scored;
- **a drifted window**: a window whose drift report has status ``drift`` (any feature, the score
  or concept drift flagged by the monitoring policy); ``drifted windows`` counts them in a row,
  newest first (one report: 1 or 0). A retraining policy's drift trigger has its own
  thresholds: a window "over the drift trigger" (churnops.retraining.decide) is another term.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, Union

from churnops.contracts.columns import CREATED_TS, EVENT_TS, JOIN_KEY, LABEL, SCORE
from churnops.contracts.online import RowStatus
from churnops.contracts.prediction_log import (
    CUSTOMER_ID,
    FEATURE_TS,
    MODEL_VERSION,
    STATUS,
    TS,
    ParquetRows,
    log_schema,
)

if TYPE_CHECKING:
    import pyarrow as pa

MATURED_LABELS = "matured_labels"
DRIFTED_SHARE = "drifted_share"
DRIFTED_WINDOWS = "drifted_windows"
TERMS = {
    MATURED_LABELS: "matured labels",
    DRIFTED_SHARE: "drifted share",
    DRIFTED_WINDOWS: "drifted windows",
}
"""JSON key -> the words every command prints it under."""


class ReportStatus(StrEnum):
    """A drift report's status (and its concept-drift check's): the ``churnops.drift_status`` tag
    retraining reads back, the JSON and the HTML."""

    DRIFT = "drift"
    NO_DRIFT = "no_drift"
    INSUFFICIENT_DATA = "insufficient_data"


class PerformanceStatus(StrEnum):
    """A performance group's status: judged, or too few matured labels to judge."""

    OK = "ok"
    INSUFFICIENT_DATA = ReportStatus.INSUFFICIENT_DATA.value


DRIFT_STATUS = ReportStatus.DRIFT.value
"""The drift report status of a drifted window."""
SCORED_STATUS = RowStatus.OK.value
"""The prediction-log status of a scored prediction."""


def labels_window(*, start: datetime, end: datetime, horizon: timedelta) -> tuple[datetime, datetime]:
    """The predictions whose matured labels a drift report of ``[start, end)`` judges."""
    if horizon < timedelta(0):
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    return start - horizon, end


class Span(Protocol):
    """A version's training window (``monitoring.baseline.TrainingWindow``): both ends included."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


PREDICTION_INPUT = (MODEL_VERSION, CUSTOMER_ID, TS, FEATURE_TS, SCORE, STATUS)
"""The prediction-log columns (:data:`~churnops.contracts.prediction_log.LOG_COLUMNS`) a label join reads."""
LABEL_INPUT = (JOIN_KEY, EVENT_TS, CREATED_TS, LABEL)
LABEL_CREATED = "label_created"
"""When the matured label became known (the label row's ``created``)."""
LABEL_LAG_S = "label_lag_s"
"""Seconds from the prediction to its label becoming known."""
MATURED_COLUMNS = (MODEL_VERSION, CUSTOMER_ID, FEATURE_TS, TS, SCORE, LABEL, LABEL_CREATED, LABEL_LAG_S)


def matured_schema(columns: Sequence[str] = MATURED_COLUMNS) -> pa.Schema:
    """The Arrow types of :data:`MATURED_COLUMNS` (of ``columns`` of them, in that order): the
    prediction-log columns keep the log's types."""
    import pyarrow as pa

    log = log_schema()
    types = {
        **{name: log.field(name).type for name in PREDICTION_INPUT},
        LABEL: pa.int64(),
        LABEL_CREATED: log.field(TS).type,
        LABEL_LAG_S: pa.float64(),
    }
    return pa.schema([(name, types[name]) for name in columns])


Rows = Union["pa.Table", ParquetRows]
"""What :func:`count_matured_labels` reads: an Arrow table, or parquet files read in place."""


@dataclass(frozen=True)
class MaturedLabels:
    """The matured labels (module docstring) of some predictions, counted whole, and what was
    left out. ``table``: every one of them (:data:`MATURED_COLUMNS`, ordered by version,
    prediction time, score, customer and snapshot), or a seeded sample of them when asked."""

    matured_labels: int
    table: pa.Table
    versions: tuple[str, ...]
    """The model versions among the scored predictions (whether or not any label matured)."""
    scored: int
    """Scored predictions read (status ok with a score, a customer id and a feature time)."""
    duplicates: int
    """Of those, repeats of a (version, customer, snapshot) already counted (the earliest counts)."""
    in_sample: int
    immature: int
    unlabelled: int


def count_matured_labels(
    *,
    predictions: Rows,
    labels: Rows,
    as_of: datetime,
    horizon: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
    training_windows: Mapping[str, Span | None] | None = None,
    sample: int | None = None,
    seed: int = 0,
    columns: Sequence[str] = MATURED_COLUMNS,
    memory_limit: str = "512MB",
) -> MaturedLabels:
    """The matured labels (module docstring) of ``predictions`` made in ``[start, end)``: the one
    implementation every report counts with.

    ``predictions`` carries :data:`PREDICTION_INPUT` (tz-aware ``ts`` / ``feature_ts``),
    ``labels`` :data:`LABEL_INPUT`. One label known twice at the same time: the later row (of a
    table; of files, the later file and row) wins. DuckDB runs it over the tables in place, or
    reads the files itself, spilling to disk past ``memory_limit``: memory grows with what is
    returned, not with what is read. ``sample``: return at most this many of the matured labels
    (the seeded hash sample of their keys; the counts are always of all of them). ``columns``:
    the ones of :data:`MATURED_COLUMNS` to return (memory grows with them).
    """
    import shutil
    import tempfile

    import duckdb
    import pyarrow as pa

    if horizon < timedelta(0):
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    if unknown := [c for c in columns if c not in MATURED_COLUMNS]:
        raise ValueError(f"columns {unknown}: not among {list(MATURED_COLUMNS)}")
    known = [(str(v), w) for v, w in (training_windows or {}).items() if w is not None]
    stamp = pa.timestamp("us", "UTC")
    windows = pa.table(
        {
            "version": pa.array([v for v, _ in known], pa.string()),
            "w_start": pa.array([w.start for _, w in known], stamp),
            "w_end": pa.array([w.end for _, w in known], stamp),
        }
    )
    bounds = ("AND ts >= $start " if start is not None else "") + ("AND ts < $end" if end is not None else "")
    spill = tempfile.mkdtemp(prefix="churnops-matured-")
    try:
        con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill})
        try:
            con.register("windows", windows)
            preds, p_params = _relation(con, predictions, name="preds", prefix="p")
            labs, l_params = _relation(con, labels, name="labs", prefix="l")
            # 1. a window's predictions: scored, one per version, customer and snapshot (the
            #    earliest by time, then score: a tie is the same prediction); 2. in-sample, or not
            #    matured yet. Hash aggregates (min of a struct is its first by each field in turn).
            con.execute(
                f"""CREATE TEMP TABLE firsts AS
                SELECT g.model_version, g.customer_id, g.feature_ts, g.first.ts AS ts,
                       g.first.score AS score, g.n,
                       coalesce(g.feature_ts BETWEEN w.w_start AND w.w_end, false) AS in_sample,
                       g.feature_ts + $horizon <= $as_of AS ripe
                FROM (SELECT CAST(model_version AS VARCHAR) AS model_version,
                             CAST(customer_id AS VARCHAR) AS customer_id, feature_ts,
                             min({{'ts': ts, 'score': score}}) AS first, count(*) AS n
                      FROM {preds}
                      WHERE status = '{SCORED_STATUS}' AND score IS NOT NULL AND NOT isnan(score)
                        AND customer_id IS NOT NULL AND feature_ts IS NOT NULL {bounds}
                      GROUP BY 1, 2, 3) g
                LEFT JOIN windows w ON w.version = g.model_version""",
                {"horizon": horizon, "as_of": as_of, **p_params}
                | {k: v for k, v in (("start", start), ("end", end)) if v is not None},
            )
            ((scored, unique, in_sample, immature, ripe),) = con.execute(
                """SELECT coalesce(sum(n), 0), count(*), count(*) FILTER (in_sample),
                          count(*) FILTER (NOT in_sample AND NOT ripe),
                          count(*) FILTER (NOT in_sample AND ripe) FROM firsts"""
            ).fetchall()
            versions = tuple(
                str(v) for (v,) in con.execute("SELECT DISTINCT model_version FROM firsts").fetchall()
            )
            # 3. the label of each matured one, as known at as_of (the latest known wins; of two
            #    known at once, the later row)
            con.execute(
                f"""CREATE TEMP TABLE matured AS
                WITH known AS (
                    SELECT CAST(customer_id AS VARCHAR) AS customer_id, event_timestamp,
                           max({{'created': created, 'file': _file, 'pos': _pos,
                                 'churned': CAST(churned AS BIGINT)}}) AS last
                    FROM {labs}
                    WHERE created <= $as_of AND churned IS NOT NULL
                      AND event_timestamp BETWEEN (SELECT min(feature_ts) FROM firsts)
                                              AND (SELECT max(feature_ts) FROM firsts)
                    GROUP BY 1, 2)
                SELECT f.model_version, f.customer_id, f.feature_ts, f.ts, f.score,
                       k.last.churned AS churned, k.last.created AS label_created,
                       CAST(epoch_us(k.last.created) - epoch_us(f.ts) AS DOUBLE) / 1e6 AS label_lag_s
                FROM firsts f JOIN known k
                  ON k.customer_id = f.customer_id AND k.event_timestamp = f.feature_ts
                WHERE NOT f.in_sample AND f.ripe""",
                {"as_of": as_of, **l_params},
            )
            con.execute("DROP TABLE firsts")
            ((matured,),) = con.execute("SELECT count(*) FROM matured").fetchall()
            chosen = "matured"
            if sample is not None and matured > sample:  # the seeded hash sample, as sample_window's
                key = f"model_version, customer_id, epoch_us(feature_ts), {int(seed)}"
                digest = f"hash(concat_ws('|', {key}))"
                chosen = f"(SELECT * FROM matured ORDER BY {digest} LIMIT {int(sample)})"
            table = con.sql(
                f"SELECT {', '.join(columns)} FROM {chosen} "
                "ORDER BY model_version, ts, score, customer_id, feature_ts"
            ).to_arrow_table()
        finally:
            con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return MaturedLabels(
        matured_labels=int(matured),
        table=table.cast(matured_schema(columns)),
        versions=tuple(sorted(versions)),
        scored=int(scored),
        duplicates=int(scored - unique),
        in_sample=int(in_sample),
        immature=int(immature),
        unlabelled=int(ripe - matured),
    )


def _relation(con: Any, rows: Rows, *, name: str, prefix: str) -> tuple[str, dict[str, Any]]:
    """A FROM clause over ``rows`` (with ``_file`` and ``_pos``: where each row came from) and
    its parameters (prefixed, so two sources never share a name)."""
    import pyarrow as pa

    if isinstance(rows, ParquetRows):
        params = {f"{prefix}_{key}": value for key, value in rows.params.items()}
        where = rows.where
        for key in sorted(rows.params, key=len, reverse=True):
            where = where.replace(f"${key}", f"${prefix}_{key}")
        params[f"{prefix}_files"] = list(rows.files)
        if not rows.files:
            raise ValueError("ParquetRows: no files (pass an empty Arrow table instead)")
        source = f"""(SELECT *, filename AS _file, file_row_number AS _pos
            FROM read_parquet(${prefix}_files, union_by_name = true, filename = true,
                              file_row_number = true) WHERE {where})"""
        return source, params
    table = rows.append_column("_file", pa.array([""] * rows.num_rows, pa.string()))
    table = table.append_column("_pos", pa.array(range(rows.num_rows), pa.int64()))
    con.register(name, table)
    return name, {}


def drifted_share(flags: Iterable[bool | None]) -> float:
    """The share of scored features flagged drifted; ``None`` flags (not scored) do not count."""
    scored = [bool(flag) for flag in flags if flag is not None]
    return sum(scored) / len(scored) if scored else 0.0


def is_drifted_window(status: str) -> bool:
    """A drifted window: its drift report's status is ``drift``."""
    return status == DRIFT_STATUS


def drifted_windows(statuses: Sequence[str]) -> int:
    """How many of the newest windows in a row are drifted (``statuses`` oldest first)."""
    count = 0
    for status in reversed(statuses):
        if not is_drifted_window(status):
            break
        count += 1
    return count


@dataclass(frozen=True)
class MonitoringCounts:
    """The vocabulary's counts of one model version's window, as every command prints them.

    ``drifted_share`` / ``drifted_windows`` are None where a command judges no drift
    (``monitor performance``); ``labels_start`` / ``labels_end``: the predictions the matured
    labels come from; ``as_of``: when the labels had to be known."""

    model_version: str
    matured_labels: int
    as_of: datetime | None
    labels_start: datetime | None
    labels_end: datetime | None
    drifted_share: float | None = None
    drifted_windows: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "model_version": self.model_version,
            "window": {"start": iso(self.window_start), "end": iso(self.window_end)},
            "labels": {
                "start": iso(self.labels_start),
                "end": iso(self.labels_end),
                "as_of": iso(self.as_of),
            },
            MATURED_LABELS: self.matured_labels,
            DRIFTED_SHARE: self.drifted_share,
            DRIFTED_WINDOWS: self.drifted_windows,
        }

    def text(self) -> str:
        """One line: ``v3: matured labels 3,439 (predictions .., known at ..); drifted share ..``."""
        source = []
        if self.labels_start is not None and self.labels_end is not None:
            start, end = f"{self.labels_start:%Y-%m-%d %H:%M}", f"{self.labels_end:%Y-%m-%d %H:%M}"
            source.append(f"predictions {start} .. {end}")
        if self.as_of is not None:
            source.append(f"known at {self.as_of:%Y-%m-%d %H:%M}")
        where = f" ({', '.join(source)})" if source else ""
        parts = [f"v{self.model_version}: {TERMS[MATURED_LABELS]} {self.matured_labels:,}{where}"]
        if self.drifted_share is not None:
            parts.append(f"{TERMS[DRIFTED_SHARE]} {self.drifted_share:.4f}")
        if self.drifted_windows is not None:
            parts.append(f"{TERMS[DRIFTED_WINDOWS]} {self.drifted_windows} (in a row)")
        return "; ".join(parts)
