"""Is data of a given time still servable now? Each view's TTL against the clock.

Online reads are judged against the current time (``churnops.contracts.online.classify``):
a view value older than its TTL is ``stale_features`` and gets no score. Data stamped long
ago (a Telco snapshot ingested ``--as-of 2024-06-30``, generated months that ended last year)
therefore materializes fine and serves nothing. Ingest, generate and materialize call
:func:`freshness` to say so at once, with the time to use instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from churnops.contracts.clock import current_time


@dataclass(frozen=True)
class Freshness:
    """Data of ``data_time`` judged at ``now``: which views are already past their TTL."""

    data_time: datetime
    now: datetime
    ttl: Mapping[str, timedelta]
    stale_views: tuple[str, ...]

    @property
    def servable(self) -> bool:
        """True when every view is inside its TTL at ``now`` (online reads can be ``ok``)."""
        return not self.stale_views

    @property
    def shortest_ttl(self) -> timedelta:
        return min(self.ttl.values())

    @property
    def stale_from(self) -> datetime:
        """When the first view of data stamped ``data_time`` goes stale."""
        return self.data_time + self.shortest_ttl

    def to_dict(self) -> dict[str, object]:
        return {
            "data_time": self.data_time.isoformat(),
            "now": self.now.isoformat(),
            "servable": self.servable,
            "stale_views": list(self.stale_views),
            "stale_from": self.stale_from.isoformat(),
            "ttl_days": {view: ttl.total_seconds() / 86400 for view, ttl in self.ttl.items()},
        }


def freshness(*, data_time: datetime, ttl: Mapping[str, timedelta], now: datetime | None = None) -> Freshness:
    """Which views of data stamped ``data_time`` are older than their TTL at ``now`` (default: now)."""
    if data_time.tzinfo is None:
        raise ValueError("data_time must be tz-aware (UTC)")
    if not ttl:
        raise ValueError("ttl is empty: pass each view's TTL")
    now = current_time(now).astimezone(UTC)
    data_time = data_time.astimezone(UTC)
    stale = tuple(sorted(view for view, limit in ttl.items() if now - data_time > limit))
    return Freshness(data_time=data_time, now=now, ttl=dict(ttl), stale_views=stale)


def today_as_of(now: datetime | None = None) -> datetime:
    """Midnight UTC of today: the ``--as-of`` that makes a snapshot of today's customers servable."""
    now = current_time(now).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def recent_start(*, months: int, now: datetime | None = None) -> date:
    """The ``data generate --start`` whose last of ``months`` monthly snapshots is this month."""
    if months < 1:
        raise ValueError("months must be >= 1")
    today = current_time(now).astimezone(UTC).date()
    index = today.year * 12 + (today.month - 1) - (months - 1)
    return date(index // 12, index % 12 + 1, 1)
