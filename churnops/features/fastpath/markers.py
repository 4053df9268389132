"""Writing and reading the completion markers of ``churnops.contracts.materialization``.

The materializer calls :func:`mark_started` before it touches a view and :func:`mark_finished`
after all of the view's rows are written; serving (and anyone asking whether the online store
is complete) calls :func:`read_markers`. Redis (plain or cluster) keeps one hash per view;
Feast's SQLite online store keeps one table in its own database file. Any other online store
raises ``MarkersUnsupported``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from churnops.contracts.materialization import (
    FIELDS,
    SQLITE_TABLE,
    STARTED_AT,
    STARTED_RUN,
    ViewMarker,
    redis_marker_key,
)
from churnops.features.fastpath import feast_private
from churnops.features.fastpath.store_access import redis_client


class MarkersUnsupported(ValueError):
    """This online store keeps no completion markers (the reason says which)."""


def mark_started(*, store: Any, views: Sequence[str], run_id: str, at: datetime) -> None:
    """Record that run ``run_id`` starts writing ``views`` (the last finished run is kept)."""
    fields = {STARTED_RUN: run_id, STARTED_AT: at.isoformat()}
    _write(store=store, updates=dict.fromkeys(views, fields))


def mark_finished(
    *, store: Any, view: str, run_id: str, end: datetime, rows: int | None, at: datetime
) -> None:
    """Record that run ``run_id`` wrote every row of ``view`` (call only once they are all written)."""
    marker = ViewMarker(
        view=view,
        started_run=run_id,
        finished_run=run_id,
        finished_end=end,
        finished_rows=rows,
        finished_at=at,
    )
    fields = marker.to_fields()
    fields.pop(STARTED_AT, None)
    _write(store=store, updates={view: fields})


def read_markers(*, store: Any, views: Sequence[str]) -> dict[str, ViewMarker]:
    """The markers of ``views`` that exist (a view without one is left out)."""
    kind = getattr(store.config.online_store, "type", "")
    project = store.config.project
    if kind == "redis":
        client = _redis_client(store)
        try:
            with client.pipeline(transaction=False) as pipe:
                for view in views:
                    pipe.hgetall(redis_marker_key(project=project, view=view))
                found = pipe.execute()
        finally:
            client.close()
        return {
            view: ViewMarker.from_fields(view=view, fields=fields)
            for view, fields in zip(views, found, strict=True)
            if fields
        }
    if kind == "sqlite":
        path = _sqlite_path(store)
        if not path.exists():
            return {}
        with sqlite3.connect(path) as con:
            if not _has_table(con):
                return {}
            marks = ", ".join("?" for _ in views)
            rows = con.execute(
                f"SELECT view, {', '.join(FIELDS)} FROM {SQLITE_TABLE} "
                f"WHERE project = ? AND view IN ({marks})",
                [project, *views],
            ).fetchall()
        return {
            row[0]: ViewMarker.from_fields(
                view=row[0], fields={k: v for k, v in zip(FIELDS, row[1:], strict=True) if v is not None}
            )
            for row in rows
        }
    raise MarkersUnsupported(f"online store {kind!r}: completion markers are kept on redis and sqlite only")


def _write(*, store: Any, updates: dict[str, dict[str, str]]) -> None:
    kind = getattr(store.config.online_store, "type", "")
    project = store.config.project
    if kind == "redis":
        client = _redis_client(store)
        try:
            # One key per view: on a cluster each HSET goes to its own slot's node.
            for view, fields in updates.items():
                client.hset(redis_marker_key(project=project, view=view), mapping=fields)
        finally:
            client.close()
        return
    if kind == "sqlite":
        path = _sqlite_path(store)
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path, timeout=30) as con:
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {SQLITE_TABLE} (project TEXT NOT NULL, view TEXT NOT NULL, "
                + ", ".join(f"{f} TEXT" for f in FIELDS)
                + ", PRIMARY KEY (project, view))"
            )
            for view, fields in updates.items():
                names = list(fields)
                con.execute(
                    f"INSERT INTO {SQLITE_TABLE} (project, view, {', '.join(names)}) "
                    f"VALUES (?, ?, {', '.join('?' for _ in names)}) "
                    "ON CONFLICT (project, view) DO UPDATE SET "
                    + ", ".join(f"{n} = excluded.{n}" for n in names),
                    [project, view, *fields.values()],
                )
        return
    raise MarkersUnsupported(f"online store {kind!r}: completion markers are kept on redis and sqlite only")


def _has_table(con: sqlite3.Connection) -> bool:
    found = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [SQLITE_TABLE])
    return found.fetchone() is not None


def _sqlite_path(store: Any) -> Path:
    return feast_private.sqlite_path(config=store.config)


def _redis_client(store: Any) -> Any:
    return redis_client(config=store.config)


__all__ = ["MarkersUnsupported", "mark_finished", "mark_started", "read_markers"]
