"""Filling the online store so that it equals the offline point-in-time view at a given time.

Two writers load the same rows:

- ``feast``: Feast's own ``FeatureStore.materialize`` (any online store).
- ``direct``: for Feast's plain Redis online store only. It reads each view's latest row per
  customer in the window with DuckDB and writes exactly the bytes Feast's Redis store writes
  (key = ``_redis_key``, fields = mmh3 of ``view:feature`` and ``_ts:<view>``, values =
  serialized ``ValueProto``s, key TTL if configured), with Feast's timestamp dedup (an older
  row never overwrites a newer ``_ts``) done server-side by one Lua script call per batch.
  Measured on 100k customers x 3 views (benchmarks/materialize.py, 2 cores): Feast ~26 s,
  direct ~3 s (0.6x the raw pipelined-HSET floor), with byte-identical hashes.

The layout (keys, fields, encodings) comes from ``churnops.features.redis_layout``, shared
with serving's direct reader. ``writer="auto"`` (the default) takes ``direct`` when the online
store is plain Redis and the installed Feast is the version that codec was verified against,
``feast`` otherwise (logging why); a view the direct writer cannot handle (not a parquet FileSource, field
mappings, a Feast encoding that no longer matches) goes through Feast.
"""

from __future__ import annotations

import contextlib
import io
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from feast import FeatureStore

from churnops.contracts.clock import wall_clock
from churnops.features import redis_layout
from churnops.features.completion import MarkersUnsupported, mark_finished, mark_started
from churnops.features.engine_switch import require_readable_sources
from churnops.features.local_parquet import NotLocalParquet, local_parquet_path
from churnops.features.online_prune import PrunePlan, PruneUnsupported, apply_prune, plan_prune
from churnops.features.redis_layout import LayoutUnsupported
from churnops.features.spark_session import start_spark_session

Writer = Literal["auto", "feast", "direct"]
BATCH_KEYS = 1_000  # keys per Lua call: ~6 ms of Redis time each, well inside a 50 ms timeout

_IN_FLIGHT = 4
_log = logging.getLogger(__name__)

# Feast's RedisOnlineStore.online_write_batch for one batch of keys, with its dedup: skip a
# row whose event time is <= the stored ``_ts`` (unless that is absent/zero), else HSET the
# timestamp and the features (in Feast's field order) and EXPIRE if a key TTL is configured.
# ARGV: n, ttl, ts_field, field_1..field_n, then per key: ts_blob, value_1..value_n.
_WRITE_BATCH = """
local function varint(s, pos)
  local value, scale = 0, 1
  while true do
    local b = string.byte(s, pos)
    if b == nil then return value, pos end
    value = value + (b % 128) * scale
    pos = pos + 1
    if b < 128 then return value, pos end
    scale = scale * 128
  end
end
-- google.protobuf.Timestamp: field 1 seconds, field 2 nanos (varints). A 10-byte seconds
-- varint is negative (before 1970): older than anything this script is given.
local function stamp(s)
  local seconds, nanos, pos = 0, 0, 1
  while pos <= #s do
    local tag = string.byte(s, pos)
    local start = pos + 1
    local v
    v, pos = varint(s, start)
    if tag == 8 then
      if pos - start >= 10 then seconds = -1 else seconds = v end
    elseif tag == 16 then
      nanos = v
    end
  end
  return seconds, nanos
end
local n = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local ts_field = ARGV[3]
local written = 0
for i, key in ipairs(KEYS) do
  local base = 3 + n + (i - 1) * (n + 1)
  local blob = ARGV[base + 1]
  local write = true
  local prev = redis.call('HGET', key, ts_field)
  if prev then
    local ps, pn = stamp(prev)
    if ps ~= 0 or pn ~= 0 then
      local s, ns = stamp(blob)
      if s < ps or (s == ps and ns <= pn) then write = false end
    end
  end
  if write then
    local args = {ts_field, blob}
    for j = 1, n do
      args[2 * j + 1] = ARGV[3 + j]
      args[2 * j + 2] = ARGV[base + 1 + j]
    end
    redis.call('HSET', key, unpack(args))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    written = written + 1
  end
end
return written
"""


@dataclass(frozen=True)
class MaterializeResult:
    """What was loaded: the cut-off time and, per view, the window read, the writer used and how
    many customers' values were removed (None: this store cannot be pruned, see the log)."""

    end: datetime
    windows: dict[str, tuple[datetime, datetime]]
    writers: dict[str, str] = field(default_factory=dict)
    removed: dict[str, int | None] = field(default_factory=dict)
    run_id: str | None = None
    marked: bool = False  # completion markers written (churnops.contracts.materialization)


class DirectWriterUnsupported(LayoutUnsupported):
    """The direct Redis writer cannot write this store or view byte-for-byte like Feast."""


class RemovalRefused(RuntimeError):
    """The run would remove more than the allowed share of a view's customers from the online
    store; nothing was written or removed. ``plans``: what each view's pruning would remove."""

    def __init__(self, *, end: datetime, plans: list[PrunePlan], max_share: float) -> None:
        self.end = end
        self.plans = plans
        self.max_share = max_share
        over = [p for p in plans if p.share > max_share]
        worst = max(over, key=lambda p: p.share)
        super().__init__(
            f"materializing as of {end:%Y-%m-%dT%H:%M:%SZ} would remove {worst.removed:,} of "
            f"{worst.stored:,} customers ({worst.share:.0%}) from view {worst.view} "
            f"({worst.outside_window:,} have no source row in its window, {worst.newer_than_end:,} hold "
            f"values newer than the end), more than the allowed {max_share:.0%}"
        )

    @property
    def removed(self) -> int:
        """The most customers one view would lose."""
        return max(p.removed for p in self.plans)


def latest_event_time(*, sources_dir: Path, views: list[str]) -> datetime | None:
    """The newest event timestamp over the given sources (the natural materialization end).

    Reads only the timestamp column of each part file, not the features.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    newest: datetime | None = None
    for view in views:
        for part in sorted((sources_dir / view).glob("*.parquet")):
            column = pq.read_table(part, columns=["event_timestamp"]).column(0)
            value = pc.max(column).as_py()
            if value is not None and (newest is None or value > newest):
                newest = value
    return newest


def materialize(
    *,
    store: FeatureStore,
    end: datetime,
    views: list[str] | None = None,
    writer: Writer = "auto",
    feast_version: str | None = None,
    on_view: Callable[[str], None] | None = None,
    max_removed_share: float | None = None,
    run_id: str | None = None,
) -> MaterializeResult:
    """Load each view's latest row per customer with event time in [end - TTL, end].

    A window of exactly the view's TTL makes the online store equal to the offline
    point-in-time answer at ``end``: a customer whose last row is older than the TTL is not
    loaded (offline gives nulls for it too), and before each view is written its online values
    that the window does not hold (customers gone from the sources, values newer than ``end``)
    are deleted (``churnops.features.online_prune``; counted in ``removed``). Feast's
    ``materialize_incremental`` starts at now - TTL instead, which loads nothing for historical
    data.

    ``writer``: ``feast`` (Feast's materialize), ``direct`` (Feast's Redis layout written
    directly; plain Redis online store only, else ``DirectWriterUnsupported``) or ``auto``
    (direct on plain Redis when the installed Feast is ``redis_layout.VERIFIED_FEAST_VERSION``,
    Feast otherwise, with one log line saying why). ``feast_version``: the version ``auto``
    judges (default: the installed one). ``on_view``: called with each view's name once it is
    loaded (a progress hook for entry points).

    Safety: what every view's pruning would remove is counted first; when a view would lose more
    than ``max_removed_share`` of the customers it holds, ``RemovalRefused`` is raised before
    anything is removed or written (None: no limit). Completeness: each view gets a completion
    marker (``churnops.features.completion``): ``started`` by ``run_id`` (default: a new one)
    before it is touched, ``finished`` once all its rows are written, so serving can tell a
    store that was filled completely from one a killed run left half way.
    """
    if end.tzinfo is None:
        raise ValueError("materialize end time must be tz-aware (UTC)")
    if writer not in ("auto", "feast", "direct"):
        raise ValueError(f"unknown materialize writer {writer!r}: use auto, feast or direct")
    end = end.astimezone(UTC)
    store_problem = redis_layout.direct_store_problem(config=store.config) or _offline_problem(store)
    if writer == "direct" and store_problem:
        raise DirectWriterUnsupported(store_problem)
    if writer == "auto" and store_problem and _is_redis(store):
        # Redis Cluster, or a Spark offline store: Feast's own path (its Spark job, its
        # cluster client) loads it, said once.
        _log.warning("materialize: direct Redis writer not used (%s); using Feast", store_problem)
    if writer == "auto" and not store_problem:
        version_problem = redis_layout.feast_version_problem(installed=feast_version)
        if version_problem:
            _log.warning("materialize: direct Redis writer not used (%s); using Feast", version_problem)
            writer = "feast"
    run_id = run_id or uuid.uuid4().hex
    selected = []
    for view in store.list_feature_views():
        if views is not None and view.name not in views:
            continue
        ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else timedelta(days=3650)
        # Feast's window is [start, end]; offline PIT keeps rows with ts >= end - ttl too.
        selected.append((view, end - ttl))
    # Sources applied under the other offline store: refused with the fix before anything is touched.
    require_readable_sources(store=store, views=[view.name for view, _ in selected])
    # Count what pruning would remove for every view before anything is removed or written.
    plans: dict[str, PrunePlan | None] = {}
    for view, start in selected:
        try:
            plans[view.name] = plan_prune(store=store, view=view, start=start, end=end)
        except PruneUnsupported as why:
            _log.warning("view %s: online values not in the window are kept (%s)", view.name, why)
            plans[view.name] = None
    counted = [p for p in plans.values() if p is not None]
    if max_removed_share is not None and any(p.share > max_removed_share for p in counted):
        raise RemovalRefused(end=end, plans=counted, max_share=max_removed_share)
    direct = _DirectRedisWriter(store) if writer != "feast" and not store_problem else None
    start_spark_session(store=store)  # on Spark: its JVM's output into a log, not the terminal
    try:
        mark_started(store=store, views=[v.name for v, _ in selected], run_id=run_id, at=wall_clock())
        marked = True
    except MarkersUnsupported as why:
        _log.warning("materialize: no completion markers (%s)", why)
        marked = False
    windows: dict[str, tuple[datetime, datetime]] = {}
    writers: dict[str, str] = {}
    removed: dict[str, int | None] = {}
    try:
        for view, start in selected:
            plan = plans[view.name]
            removed[view.name] = None if plan is None else apply_prune(store=store, view=view, plan=plan)
            used = "feast"
            if direct is not None:
                try:
                    direct.write_view(view, start=start, end=end)
                    used = "direct"
                except DirectWriterUnsupported as why:
                    if writer == "direct":
                        raise
                    _log.warning("view %s: direct Redis writer not used (%s); using Feast", view.name, why)
                direct.flush()  # the view's rows are all written (and the views' writes stay in order)
            if used == "feast":
                # Feast prints progress bars to stdout; a library function returns, it does not print.
                with contextlib.redirect_stdout(io.StringIO()):
                    store.materialize(start_date=start, end_date=end, feature_views=[view.name])
            if marked:
                rows = None if plan is None else plan.window
                mark_finished(store=store, view=view.name, run_id=run_id, end=end, rows=rows, at=wall_clock())
            windows[view.name] = (start, end)
            writers[view.name] = used
            if on_view is not None:
                on_view(view.name)
    finally:
        if direct is not None:
            direct.close()
    return MaterializeResult(
        end=end, windows=windows, writers=writers, removed=removed, run_id=run_id, marked=marked
    )


def _offline_problem(store: FeatureStore) -> str | None:
    """The direct writer reads parquet with DuckDB: on Spark, Feast's Spark job does the reading."""
    kind = getattr(store.config.offline_store, "type", "duckdb")
    if kind in ("duckdb", "file"):
        return None
    return f"the offline store is {kind}; its own job reads the sources"


def _is_redis(store: FeatureStore) -> bool:
    return getattr(store.config.online_store, "type", None) == "redis"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _DirectRedisWriter:
    """Feast's Redis online layout, written from DuckDB-deduplicated rows in Lua-scripted batches."""

    def __init__(self, store: FeatureStore) -> None:
        import redis
        from feast.infra.online_stores.redis import RedisOnlineStore

        self._store = store
        self._config = store.config
        online = self._config.online_store
        # The client Feast itself builds from the connection string (same timeouts, db, auth).
        nodes, kwargs = RedisOnlineStore._parse_connection_string(online.connection_string)
        self._client: Any = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **kwargs)
        self._script: Any = self._client.register_script(_WRITE_BATCH)
        # One background writer: Redis runs batch i while this thread encodes batch i+1 (or
        # reads the next view); calls stay in order. Registry intervals are recorded by flush().
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="churnops-materialize")
        self._pending: list[Future[Any]] = []
        self._done: list[tuple[Any, datetime, datetime]] = []
        self._ttl = int(online.key_ttl_seconds or 0)

    def flush(self) -> None:
        """Wait for every batch sent, then record the views' windows in the registry as Feast does."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()
        done, self._done = self._done, []
        for view, start, end in done:
            self._store.registry.apply_materialization(view, self._store.project, start, end)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def write_view(self, view: Any, *, start: datetime, end: datetime) -> int:
        """Write one view's window; returns the number of rows sent (dedup may skip some)."""
        table, key_field, value_types = self._read(view, start=start, end=end)
        if table.num_rows:
            layout = redis_layout.view_fields(view=view, config=self._config)
            try:
                keys = self._keys(table.column("__key"), key_field)
                stamps = redis_layout.encode_timestamps(
                    table.column("__ts_us").to_pylist(),
                    check=pd.to_datetime(
                        table.column("__ts").slice(0, redis_layout.CHECK_ROWS).to_numpy(zero_copy_only=False)
                    ),
                )
                columns = [
                    redis_layout.encode_values(table.column(f.name), vt)
                    for f, vt in zip(view.features, value_types, strict=True)
                ]
            except LayoutUnsupported as why:
                raise DirectWriterUnsupported(f"{view.name}: {why}") from why
            self._write(keys, stamps, columns, list(layout.fields), ts_field=layout.ts_field)
        self._done.append((view, start, end))
        return int(table.num_rows)

    def _read(self, view: Any, *, start: datetime, end: datetime) -> tuple[Any, Any, list[Any]]:
        """The view's latest row per entity with event time in [start, end], as Feast selects it."""
        import duckdb
        from feast import FeatureView

        if type(view) is not FeatureView or not view.online:
            raise DirectWriterUnsupported(f"{view.name} is not a plain online FeatureView")
        try:
            path = local_parquet_path(view=view, repo_path=self._store.repo_path)
        except NotLocalParquet as why:
            raise DirectWriterUnsupported(str(why)) from None
        source = view.batch_source
        assert source is not None  # a FileSource: local_parquet_path checked it
        key_field = view.entity_columns[0]
        ts, created = _quote(source.timestamp_field), source.created_timestamp_column
        order = f"{ts} DESC" + (f", {_quote(created)} DESC" if created else "")
        features = "".join(f", {_quote(f.name)}" for f in view.features)
        key = _quote(key_field.name)
        # Feast (ibis on duckdb, session time zone UTC): CAST(ts AS TIMESTAMP) between the
        # naive-UTC bounds, inclusive; then row_number over (key) by ts desc, created desc.
        query = (
            f"SELECT {key} AS __key, {ts} AS __ts, epoch_us({ts}) AS __ts_us{features} "
            f"FROM read_parquet(?) "
            f"WHERE CAST({ts} AS TIMESTAMP) >= ? AND CAST({ts} AS TIMESTAMP) <= ? "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}) = 1"
        )
        naive = [t.astimezone(UTC).replace(tzinfo=None) for t in (start, end)]
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            table = con.sql(query, params=[path, *naive]).to_arrow_table()
        value_types = [f.dtype.to_value_type() for f in view.features]
        return table, key_field, value_types

    def _keys(self, column: Any, key_field: Any) -> list[bytes]:
        """Feast's ``_redis_key(project, entity_key)`` per row: serialized entity key + project."""
        from feast.type_map import python_values_to_proto_values

        codec = redis_layout.entity_key_codec(config=self._config, join_key=key_field)
        if codec.fast_head is not None and column.null_count == 0:
            return codec.encode(column.to_pylist())
        # Any other key type: the values Feast's materialize would convert, through Feast.
        protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), codec.value_type)
        return [codec.proto_key(p) for p in protos]

    def _write(
        self,
        keys: list[bytes],
        stamps: list[bytes],
        columns: list[list[bytes]],
        fields: list[bytes],
        *,
        ts_field: str,
    ) -> None:
        n = len(fields)
        stride = n + 1
        header: list[Any] = [n, self._ttl, ts_field, *fields]
        for lo in range(0, len(keys), BATCH_KEYS):
            hi = min(lo + BATCH_KEYS, len(keys))
            block: list[bytes] = [b""] * ((hi - lo) * stride)
            block[0::stride] = stamps[lo:hi]
            for j, values in enumerate(columns, start=1):
                block[j::stride] = values[lo:hi]
            # At most a few batches in flight: bounded memory, and a failed batch stops the run.
            while len(self._pending) >= _IN_FLIGHT or (self._pending and self._pending[0].done()):
                self._pending.pop(0).result()
            self._pending.append(self._pool.submit(self._script, keys=keys[lo:hi], args=header + block))


__all__ = [
    "BATCH_KEYS",
    "DirectWriterUnsupported",
    "MaterializeResult",
    "RemovalRefused",
    "Writer",
    "latest_event_time",
    "materialize",
]
