"""Filling the online store so that it equals the offline point-in-time view at a given time."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from feast import FeatureStore

from churnops.sources import read_source


@dataclass(frozen=True)
class MaterializeResult:
    """What was loaded: the cut-off time and, per view, the window read."""

    end: datetime
    windows: dict[str, tuple[datetime, datetime]]


def latest_event_time(*, sources_dir: object, views: list[str]) -> datetime | None:
    """The newest event timestamp over the given sources (the natural materialization end)."""
    from pathlib import Path

    newest: pd.Timestamp | None = None
    for view in views:
        frame = read_source(sources_dir=Path(str(sources_dir)), name=view)
        if not frame.empty:
            ts = frame["event_timestamp"].max()
            newest = ts if newest is None or ts > newest else newest
    return None if newest is None else newest.to_pydatetime()


def materialize(*, store: FeatureStore, end: datetime, views: list[str] | None = None) -> MaterializeResult:
    """Load each view's latest row per customer with event time in (end - TTL, end].

    A window of exactly the view's TTL makes the online store equal to the offline
    point-in-time answer at ``end``: a customer whose last row is older than the TTL is not
    loaded (offline gives nulls for it too). Feast's ``materialize_incremental`` starts at
    now - TTL instead, which loads nothing for historical data.
    """
    if end.tzinfo is None:
        raise ValueError("materialize end time must be tz-aware (UTC)")
    end = end.astimezone(UTC)
    windows: dict[str, tuple[datetime, datetime]] = {}
    for view in store.list_feature_views():
        if views is not None and view.name not in views:
            continue
        ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else timedelta(days=3650)
        # Feast's window is [start, end]; offline PIT keeps rows with ts >= end - ttl too.
        start = end - ttl
        # Feast prints progress bars to stdout; a library function returns, it does not print.
        with contextlib.redirect_stdout(io.StringIO()):
            store.materialize(start_date=start, end_date=end, feature_views=[view.name])
        windows[view.name] = (start, end)
    return MaterializeResult(end=end, windows=windows)
