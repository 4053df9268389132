"""Completion markers: which views of the online store were completely materialized, and by which run.

The materializer writes, per view and run, ``started`` before it touches the view and
``finished`` (with the run's end time and the number of customers loaded) only after every row
of the view is written. Serving is ready only when every view of its FeatureService has a
``finished`` marker: a store that was emptied (a Redis restarted without its data: the markers
go with it) or whose first materialization died half way reports the view that is incomplete.
A later run that is still going (its ``started`` newer than the last ``finished``) does not
make the store unready: it refreshes values in place, and the last complete run still holds.

Where the markers live, next to the data they describe so that they vanish with it:

- Redis: one hash per view at ``<project>:churnops:materialized:<view>`` (outside Feast's own
  keys, which are a binary entity key followed by the project name; never matched by Feast's
  scans or the pruning).
- SQLite (the embedded online store): the table ``churnops_materialized`` in the online
  store's own database file, one row per (project, view).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

MARKER_NAMESPACE = "churnops:materialized"
SQLITE_TABLE = "churnops_materialized"

STARTED_RUN = "started_run"
STARTED_AT = "started_at"
FINISHED_RUN = "finished_run"
FINISHED_END = "finished_end"
FINISHED_ROWS = "finished_rows"
FINISHED_AT = "finished_at"
FIELDS = (STARTED_RUN, STARTED_AT, FINISHED_RUN, FINISHED_END, FINISHED_ROWS, FINISHED_AT)

_GLOB = re.compile(r"([\\*?\[\]])")


def redis_marker_key(*, project: str, view: str) -> bytes:
    """The Redis key of ``view``'s completion marker in ``project``."""
    if not project or not view:
        raise ValueError("a completion marker needs the Feast project and the view name")
    return f"{project}:{MARKER_NAMESPACE}:{view}".encode()


def redis_marker_pattern(*, project: str) -> bytes:
    """A SCAN MATCH pattern for every completion marker of ``project`` (glob characters escaped)."""
    if not project:
        raise ValueError("project is empty; pass the Feast project name (Settings.project)")
    escaped = _GLOB.sub(r"\\\1", project)
    return f"{escaped}:{MARKER_NAMESPACE}:*".encode()


@dataclass(frozen=True)
class ViewMarker:
    """One view's marker: the newest run that started on it and the newest that finished it."""

    view: str
    started_run: str | None = None
    started_at: datetime | None = None
    finished_run: str | None = None
    finished_end: datetime | None = None
    finished_rows: int | None = None
    finished_at: datetime | None = None

    @property
    def complete(self) -> bool:
        return self.finished_run is not None

    @property
    def in_progress(self) -> bool:
        """A run started after the last one that finished (or none finished)."""
        return self.started_run is not None and self.started_run != self.finished_run

    def to_fields(self) -> dict[str, str]:
        """The marker as strings (a Redis hash, an SQLite row); unset fields left out."""
        values: dict[str, object | None] = {
            STARTED_RUN: self.started_run,
            STARTED_AT: self.started_at,
            FINISHED_RUN: self.finished_run,
            FINISHED_END: self.finished_end,
            FINISHED_ROWS: self.finished_rows,
            FINISHED_AT: self.finished_at,
        }
        return {
            k: v.isoformat() if isinstance(v, datetime) else str(v)
            for k, v in values.items()
            if v is not None
        }

    @classmethod
    def from_fields(cls, *, view: str, fields: Mapping[str, str] | Mapping[bytes, bytes]) -> ViewMarker:
        """Read a marker back (bytes or str keys and values); an unreadable value raises ValueError."""
        text: dict[str, str] = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }

        def when(name: str) -> datetime | None:
            return datetime.fromisoformat(text[name]) if text.get(name) else None

        rows = text.get(FINISHED_ROWS)
        return cls(
            view=view,
            started_run=text.get(STARTED_RUN) or None,
            started_at=when(STARTED_AT),
            finished_run=text.get(FINISHED_RUN) or None,
            finished_end=when(FINISHED_END),
            finished_rows=int(rows) if rows else None,
            finished_at=when(FINISHED_AT),
        )


def completion_problem(*, views: Sequence[str], markers: Mapping[str, ViewMarker]) -> str | None:
    """Why the online store is not completely materialized for ``views`` (None: it is).

    Names the first view that has no marker (never materialized into this store, or the store
    was emptied since) or whose only run has not finished (killed, failed, or still running).
    """
    for view in views:
        marker = markers.get(view)
        if marker is None or (marker.started_run is None and marker.finished_run is None):
            return (
                f"view {view} was never materialized into this online store (or the store was emptied "
                "since); run `churnops features materialize`"
            )
        if not marker.complete:
            return (
                f"view {view} is not completely materialized: run {marker.started_run} started "
                f"{_when(marker.started_at)} and has not finished (killed or still running); "
                "run `churnops features materialize` again"
            )
    return None


def _when(value: datetime | None) -> str:
    return f"at {value:%Y-%m-%dT%H:%M:%SZ}" if value is not None else "at an unknown time"
