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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnops.features.fastpath import feast_private
from churnops.features.fastpath.codec import (
    EntityKeyCodec,
    LayoutUnsupported,
    decode_timestamp,
    entity_key_codec,
)
from churnops.features.fastpath.fields import ViewFields, view_fields
from churnops.features.fastpath.store_access import direct_store_problem, redis_client
from churnops.features.local_parquet import NotLocalParquet, local_parquet_path

SCAN_COUNT = 1_000


class PruneUnsupported(ValueError):
    """This online store or view cannot be pruned (the reason says which)."""


@dataclass(frozen=True)
class PrunePlan:
    """What pruning one view would remove, counted before anything is removed.

    ``stored``: customers holding a value of the view now; ``outside_window``: those with no
    source row in ``[start, end]`` (gone from the sources, or older than the TTL at ``end``);
    ``newer_than_end``: those whose value is newer than ``end``; ``window``: customers with a
    source row in the window (what the write loads). ``keys``: the store's keys to remove.
    """

    view: str
    stored: int
    outside_window: int
    newer_than_end: int
    window: int
    keys: tuple[bytes, ...] = field(repr=False, default=())

    @property
    def removed(self) -> int:
        return len(self.keys)

    @property
    def share(self) -> float:
        """The share of the view's stored customers the prune removes (0 for an empty view)."""
        return self.removed / self.stored if self.stored else 0.0


def prune_view(*, store: Any, view: Any, start: datetime, end: datetime) -> int:
    """Delete the view's online values the offline answer at ``end`` does not hold; returns how
    many customers lost them. Raises ``PruneUnsupported`` for stores and sources it cannot read."""
    plan = plan_prune(store=store, view=view, start=start, end=end)
    return apply_prune(store=store, view=view, plan=plan)


def plan_prune(*, store: Any, view: Any, start: datetime, end: datetime) -> PrunePlan:
    """Count (and list) what :func:`prune_view` would delete for ``view``, deleting nothing."""
    keep = window_ids(store=store, view=view, start=start, end=end)
    online = store.config.online_store
    kind = getattr(online, "type", "")
    if kind == "sqlite":
        return _plan_sqlite(store=store, view=view, keep=keep, end=end)
    if kind == "redis":
        problem = direct_store_problem(config=store.config)
        if problem:
            raise PruneUnsupported(problem)
        return _plan_redis(store=store, view=view, keep=keep, end=end)
    raise PruneUnsupported(f"online store {kind!r}: only sqlite and plain redis are pruned")


def apply_prune(*, store: Any, view: Any, plan: PrunePlan) -> int:
    """Delete what ``plan`` listed; returns how many customers lost the view's values."""
    if not plan.keys:
        return 0
    kind = getattr(store.config.online_store, "type", "")
    if kind == "sqlite":
        return _delete_sqlite(store=store, view=view, keys=plan.keys)
    if kind == "redis":
        return _delete_redis(store=store, view=view, keys=plan.keys)
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


def _codec(store: Any, view: Any) -> EntityKeyCodec:
    return entity_key_codec(config=store.config, join_key=view.entity_columns[0])


def _sqlite_table(store: Any, view: Any) -> tuple[Path, str]:
    config = store.config
    path = feast_private.sqlite_path(config=config)
    table = feast_private.sqlite_table(
        project=config.project, view=view, versioning=config.registry.enable_online_feature_view_versioning
    )
    return path, '"' + table.replace('"', '""') + '"'


def _plan_sqlite(*, store: Any, view: Any, keep: list[Any], end: datetime) -> PrunePlan:
    config = store.config
    path, quoted = _sqlite_table(store, view)
    empty = PrunePlan(view=view.name, stored=0, outside_window=0, newer_than_end=0, window=len(keep))
    if not path.exists():
        return empty
    codec = _codec(store, view)
    suffix = len(config.project.encode("utf-8"))
    # Feast's SQLite entity_key is serialize_entity_key(...): the Redis key without the project.
    wanted = {k[:-suffix] for k in codec.encode(keep)} if keep else set()
    # Feast stores event_ts through sqlite3's datetime adapter: int(naive_utc.timestamp()).
    limit = int(end.astimezone(UTC).replace(tzinfo=None).timestamp())
    with sqlite3.connect(path) as con:
        exists = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [quoted[1:-1]])
        if exists.fetchone() is None:
            return empty
        stored = con.execute(f"SELECT entity_key, MAX(event_ts) FROM {quoted} GROUP BY entity_key").fetchall()
    outside = [bytes(k) for k, _ in stored if bytes(k) not in wanted]
    newer = [
        bytes(k) for k, ts in stored if bytes(k) in wanted and isinstance(ts, int | float) and ts > limit
    ]
    return PrunePlan(
        view=view.name,
        stored=len(stored),
        outside_window=len(outside),
        newer_than_end=len(newer),
        window=len(keep),
        keys=(*outside, *newer),
    )


def _delete_sqlite(*, store: Any, view: Any, keys: tuple[bytes, ...]) -> int:
    path, quoted = _sqlite_table(store, view)
    with sqlite3.connect(path) as con:
        con.executemany(f"DELETE FROM {quoted} WHERE entity_key = ?", [(k,) for k in keys])
    return len(keys)


def _redis_client(store: Any) -> Any:
    return redis_client(config=store.config)  # plain Redis: plan_prune refuses a cluster


def _plan_redis(*, store: Any, view: Any, keep: list[Any], end: datetime) -> PrunePlan:
    client = _redis_client(store)
    codec = _codec(store, view)
    fields = view_fields(view=view, config=store.config)
    wanted = set(codec.encode(keep)) if keep else set()
    stored = 0
    outside: list[bytes] = []
    newer: list[bytes] = []
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=codec.scan_pattern(), count=SCAN_COUNT):
            if _is_project_key(codec, key):
                batch.append(key)
            if len(batch) >= SCAN_COUNT:
                stored += _plan_redis_batch(
                    client, batch, wanted=wanted, fields=fields, end=end, into=(outside, newer)
                )
                batch = []
        if batch:
            stored += _plan_redis_batch(
                client, batch, wanted=wanted, fields=fields, end=end, into=(outside, newer)
            )
    finally:
        client.close()
    return PrunePlan(
        view=view.name,
        stored=stored,
        outside_window=len(outside),
        newer_than_end=len(newer),
        window=len(keep),
        keys=(*outside, *newer),
    )


def _delete_redis(*, store: Any, view: Any, keys: tuple[bytes, ...]) -> int:
    fields = view_fields(view=view, config=store.config)
    client = _redis_client(store)
    try:
        for lo in range(0, len(keys), SCAN_COUNT):
            # HDEL of a hash's last fields deletes the key; other views' fields stay.
            with client.pipeline(transaction=False) as pipe:
                for key in keys[lo : lo + SCAN_COUNT]:
                    pipe.hdel(key, fields.ts_field.encode("utf-8"), *fields.fields)
                pipe.execute()
    finally:
        client.close()
    return len(keys)


def _is_project_key(codec: EntityKeyCodec, key: bytes) -> bool:
    """True only for a key this project's codec writes (a suffix match alone is not enough)."""
    try:
        return codec.encode([codec.decode(key)]) == [key]
    except (LayoutUnsupported, ValueError, TypeError):
        return False


def _plan_redis_batch(
    client: Any,
    keys: Iterable[bytes],
    *,
    wanted: set[bytes],
    fields: ViewFields,
    end: datetime,
    into: tuple[list[bytes], list[bytes]],
) -> int:
    """Sort a batch's keys holding the view into outside-window and newer-than-end; returns how
    many hold the view."""
    keys = list(keys)
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, fields.ts_field)
        stamps = pipe.execute()
    outside, newer = into
    holding = 0
    for key, blob in zip(keys, stamps, strict=True):
        if blob is None:  # the customer has no value of this view
            continue
        holding += 1
        if key not in wanted:
            outside.append(key)
            continue
        stamp = decode_timestamp(blob)
        if stamp is not None and stamp > end:
            newer.append(key)
    return holding


__all__ = [
    "SCAN_COUNT",
    "PrunePlan",
    "PruneUnsupported",
    "apply_prune",
    "plan_prune",
    "prune_view",
    "window_ids",
]
