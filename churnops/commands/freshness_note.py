"""The warning ingest, generate and materialize print when data is too old to be served today.

Online serving judges features against the clock (a view value older than its TTL is
``stale_features``, no score), so the product's answer for old data is: stamp a snapshot of
today's customers with today's time to serve it, and score history as of its own time with
``churnops score --as-of`` (batch scoring reads the offline store point-in-time).
"""

from __future__ import annotations

from churnops.features.freshness import Freshness


def _iso(value: object) -> str:
    from datetime import datetime

    assert isinstance(value, datetime)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def stale_warning(fresh: Freshness, *, serve_now: str) -> str:
    """One paragraph: what is stale, what that means for serving, and the two ways out.

    ``serve_now``: the command that makes this data servable today (the as-of or start to use).
    """
    ttl = ", ".join(f"{view} {fresh.ttl[view].days} days" for view in fresh.stale_views)
    return (
        f"warning: this data is as of {_iso(fresh.data_time)}, older than the TTL of {ttl} today "
        f"({fresh.now:%Y-%m-%d}): `churnops serve` and `features online` answer `stale_features` "
        f"(no score) for every customer.\n"
        f"  to serve it now: {serve_now}\n"
        f"  to score it as of its own time (a backfill): "
        f"`churnops score --as-of {_iso(fresh.data_time)}`"
    )
