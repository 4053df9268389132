"""The one timestamp rule: every time a user gives carries its offset, and lands in UTC.

A naive time is ambiguous (local? UTC?), so it is refused with the fix in the message, as are
times outside the range the stores handle (Feast, parquet microseconds, PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
EXAMPLE = "2024-06-30T00:00:00Z"


class TimestampValueError(ValueError):
    """A time the user gave that cannot be used; the message names the field and the fix."""


def parse_utc(value: str | datetime, *, field: str) -> datetime:
    """``value`` (ISO 8601 with ``Z`` or ``+HH:MM``, or an aware datetime) as an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    else:
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise TimestampValueError(
                f"{field} {value!r} is not an ISO time; write it like {EXAMPLE}"
            ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise TimestampValueError(
            f"{field} {str(value)!r} has no UTC offset; write it as {EXAMPLE} or with +HH:MM"
        )
    converted = parsed.astimezone(UTC)
    if not EARLIEST <= converted < LATEST:
        raise TimestampValueError(
            f"{field} {str(value)!r} is outside {EARLIEST:%Y-%m-%d} .. {LATEST:%Y-%m-%d}; "
            "give the time the data is about"
        )
    return converted
