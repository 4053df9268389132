"""The online-row status rule: when a served feature row is usable, and why not.

Shared by Feast's read path (``churnops.features.online``) and serving's direct Redis reader,
so both judge a row the same way. Feast does not enforce a view's TTL on online reads (an old
value comes back as present), so staleness is judged here from each view's event time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

RowStatus = Literal["ok", "unknown_customer", "stale_features", "missing_features"]


@dataclass(frozen=True)
class OnlineRow:
    """One customer's feature vector as served, and why it may not be usable."""

    customer_id: str
    features: dict[str, Any]
    status: RowStatus
    event_timestamps: dict[str, datetime | None]
    stale_views: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def classify(
    *,
    customer_id: str,
    features: dict[str, Any],
    view_ts: dict[str, datetime | None],
    missing: list[str],
    ttl: dict[str, timedelta | None],
    now: datetime,
) -> OnlineRow:
    """One row's status, by precedence: unknown > missing > stale > ok (shared with serving's
    direct Redis reader, so both judge a row the same way)."""
    stale = tuple(
        sorted(
            view
            for view, ts in view_ts.items()
            if ts is not None and (limit := ttl.get(view)) is not None and now - ts > limit
        )
    )
    status: RowStatus
    if len(missing) == len(features):
        status = "unknown_customer"
    elif missing:
        status = "missing_features"
    elif stale:
        status = "stale_features"
    else:
        status = "ok"
    return OnlineRow(
        customer_id=customer_id,
        features=features,
        status=status,
        event_timestamps=view_ts,
        stale_views=stale,
        missing=tuple(missing),
    )


def feature_time(row: OnlineRow) -> datetime | None:
    """The event time of the feature snapshot a row used: the newest of its views' times."""
    stamps = [ts for ts in row.event_timestamps.values() if ts is not None]
    return max(stamps) if stamps else None
