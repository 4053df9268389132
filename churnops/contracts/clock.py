"""The one clock: every command that reads "now" reads it here, so a test (or a replay) pins it.

``CHURNOPS_NOW`` (Settings.now) or a command's ``--now`` pins the time; otherwise it is the wall
clock. A pinned time may lie in the past (a replay, a backfill) but never more than
``MAX_FUTURE_SKEW`` ahead of the wall clock: a decision or a materialization recorded in the future
would wedge everything that compares against it until that date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW_ENV = "CHURNOPS_NOW"
MAX_FUTURE_SKEW = timedelta(minutes=5)


class FutureTimeError(ValueError):
    """A pinned "now" (or an end time) beyond the wall clock plus the allowed skew."""


def wall_clock() -> datetime:
    """The real time, aware UTC: the only direct read of the clock outside durations."""
    return datetime.now(UTC)


def not_in_future(value: datetime, *, field: str, wall: datetime | None = None) -> datetime:
    """``value`` unchanged, or :class:`FutureTimeError` naming ``field`` when it lies in the future."""
    limit = (wall or wall_clock()) + MAX_FUTURE_SKEW
    if value > limit:
        raise FutureTimeError(
            f"{field} {value:%Y-%m-%dT%H:%M:%SZ} lies in the future (the clock says "
            f"{limit - MAX_FUTURE_SKEW:%Y-%m-%dT%H:%M:%SZ}); give a time up to now, or leave it out"
        )
    return value


def current_time(pinned: datetime | None) -> datetime:
    """``pinned`` when set (already checked by Settings), else the wall clock."""
    return pinned if pinned is not None else wall_clock()
