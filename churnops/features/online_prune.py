"""Removing what the offline answer at ``end`` no longer holds from Feast's online store.

Feast's materialize only ever upserts: a customer removed from the sources (a re-ingest
without them, a regenerated base) keeps their old row online and is still scored ``ok``, and
a row written by an earlier run with a later ``end`` survives a run with an earlier one (its
timestamp wins Feast's dedup). Before a view is written, :func:`prune_view` deletes that
view's online values for every customer that either has no source row in the window
``[end - ttl, end]`` or holds a value newer than ``end``; the write then fills the second
kind back from the window. Afterwards the online store equals the offline point-in-time
answer at ``end``, deletions included.

Only this project's data is touched: on Redis, keys matched by Feast's own scan pattern whose
bytes re-encode exactly (so another project whose name ends with this one's is never hit),
and only the view's own hash fields (other views of the customer stay); on SQLite, the view's
own ``<project>_<view>`` table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnops.features import redis_layout
from churnops.features.local_parquet import NotLocalParquet, local_parquet_path
from churnops.features.redis_layout import LayoutUnsupported

SCAN_COUNT = 1_000


class PruneUnsupported(ValueError):
    """This online store or view cannot be pruned (the reason says which)."""


def prune_view(*, store: Any, view: Any, start: datetime, end: datetime) -> int:
    """Delete the view's online values the offline answer at ``end`` does not hold; returns how
    many customers lost them. Raises ``PruneUnsupported`` for stores and sources it cannot read."""
    keep = window_ids(store=store, view=view, start=start, end=end)
    online = store.config.online_store
    kind = getattr(online, "type", "")
    if kind == "sqlite":
        return _prune_sqlite(store=store, view=view, keep=keep, end=end)
    if kind == "redis":
        problem = redis_layout.direct_store_problem(config=store.config)
        if problem:
            raise PruneUnsupported(problem)
        return _prune_redis(store=store, view=view, keep=keep, end=end)
    raise PruneUnsupported(f"online store {kind!r}: only sqlite and plain redis are pruned")


def window_ids(*, store: Any, view: Any, start: datetime, end: datetime) -> list[Any]:
    """The join-key values with a source row of the view in ``[start, end]`` (Feast's bounds)."""
    import duckdb

    try:
        path = local_parquet_path(view=view, repo_path=store.repo_path)
    except NotLocalParquet as why:
        raise PruneUnsupported(str(why)) from None
    source = view.batch_source
    key = '"' + view.entity_columns[0].name.replace('"', '""') + '"'
    ts = '"' + source.timestamp_field.replace('"', '""') + '"'
    query = (
        f"SELECT DISTINCT {key} FROM read_parquet(?) "
        f"WHERE CAST({ts} AS TIMESTAMP) >= ? AND CAST({ts} AS TIMESTAMP) <= ? AND {key} IS NOT NULL"
    )
    naive = [t.astimezone(UTC).replace(tzinfo=None) for t in (start, end)]
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        try:
            rows = con.execute(query, [path, *naive]).fetchall()
        except duckdb.IOException:  # no part file matches the glob: nothing in the window
            rows = []
    return [r[0] for r in rows]


def _codec(store: Any, view: Any) -> redis_layout.EntityKeyCodec:
    return redis_layout.entity_key_codec(config=store.config, join_key=view.entity_columns[0])


def _prune_sqlite(*, store: Any, view: Any, keep: list[Any], end: datetime) -> int:
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    config = store.config
    path = Path(SqliteOnlineStore._get_db_path(config))
    if not path.exists():
        return 0
    table = compute_table_id(config.project, view, config.registry.enable_online_feature_view_versioning)
    codec = _codec(store, view)
    suffix = len(config.project.encode("utf-8"))
    # Feast's SQLite entity_key is serialize_entity_key(...): the Redis key without the project.
    wanted = {k[:-suffix] for k in codec.encode(keep)} if keep else set()
    # Feast stores event_ts through sqlite3's datetime adapter: int(naive_utc.timestamp()).
    limit = int(end.astimezone(UTC).replace(tzinfo=None).timestamp())
    quoted = '"' + table.replace('"', '""') + '"'
    with sqlite3.connect(path) as con:
        exists = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table])
        if exists.fetchone() is None:
            return 0
        stored = con.execute(f"SELECT entity_key, MAX(event_ts) FROM {quoted} GROUP BY entity_key")
        gone = [
            (bytes(k),)
            for k, ts in stored.fetchall()
            if bytes(k) not in wanted or (isinstance(ts, int | float) and ts > limit)
        ]
        con.executemany(f"DELETE FROM {quoted} WHERE entity_key = ?", gone)
    return len(gone)


def _prune_redis(*, store: Any, view: Any, keep: list[Any], end: datetime) -> int:
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStore

    config = store.config
    nodes, kwargs = RedisOnlineStore._parse_connection_string(config.online_store.connection_string)
    client: Any = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **kwargs)
    codec = _codec(store, view)
    fields = redis_layout.view_fields(view=view, config=config)
    wanted = set(codec.encode(keep)) if keep else set()
    removed = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=codec.scan_pattern(), count=SCAN_COUNT):
            if _is_project_key(codec, key):
                batch.append(key)
            if len(batch) >= SCAN_COUNT:
                removed += _prune_redis_batch(client, batch, wanted=wanted, fields=fields, end=end)
                batch = []
        if batch:
            removed += _prune_redis_batch(client, batch, wanted=wanted, fields=fields, end=end)
    finally:
        client.close()
    return removed


def _is_project_key(codec: redis_layout.EntityKeyCodec, key: bytes) -> bool:
    """True only for a key this project's codec writes (a suffix match alone is not enough)."""
    try:
        return codec.encode([codec.decode(key)]) == [key]
    except (LayoutUnsupported, ValueError, TypeError):
        return False


def _prune_redis_batch(
    client: Any, keys: Iterable[bytes], *, wanted: set[bytes], fields: redis_layout.ViewFields, end: datetime
) -> int:
    keys = list(keys)
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, fields.ts_field)
        stamps = pipe.execute()
    gone: list[bytes] = []
    for key, blob in zip(keys, stamps, strict=True):
        if blob is None:  # the customer has no value of this view
            continue
        stamp = redis_layout.decode_timestamp(blob)
        if key not in wanted or (stamp is not None and stamp > end):
            gone.append(key)
    if gone:
        # HDEL of a hash's last fields deletes the key; other views' fields stay.
        with client.pipeline(transaction=False) as pipe:
            for key in gone:
                pipe.hdel(key, fields.ts_field.encode("utf-8"), *fields.fields)
            pipe.execute()
    return len(gone)
