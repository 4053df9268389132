"""A minimal 5-field cron expression (minute hour day-of-month month day-of-week), in UTC.

Enough for a retraining schedule: ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``,
and lists ``a,b``. Day-of-week 0 or 7 is Sunday. As in cron, when both day fields are
restricted a day matches if either does. (``croniter`` is not a dependency; this is ~80 lines.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day_of_month", 1, 31),
    ("month", 1, 12),
    ("day_of_week", 0, 7),
)
MAX_LOOKBACK_DAYS = 366 * 5


class CronError(ValueError):
    """An expression that is not a valid 5-field cron line (the message names the field)."""


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
        except ValueError:
            raise CronError(f"{name}: step {step_text!r} is not a number") from None
        if step < 1:
            raise CronError(f"{name}: step must be >= 1, got {step}")
        if base == "*":
            start, end = low, high
        else:
            first, _, last = base.partition("-")
            try:
                start = int(first)
                end = int(last) if last else (high if step_text else start)
            except ValueError:
                raise CronError(f"{name}: {part!r} is not a number, range or step") from None
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise CronError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; :meth:`previous` finds the last tick at or before a time."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday ... 6 = Sunday (Python's weekday())
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != len(FIELDS):
            raise CronError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)} "
                f"in {expression!r}; e.g. '0 3 * * 1' for Mondays at 03:00 UTC"
            )
        parsed = [_parse_field(p, n, lo, hi) for p, (n, lo, hi) in zip(parts, FIELDS, strict=True)]
        weekdays = frozenset((d - 1) % 7 for d in parsed[4])  # cron 0/7 = Sunday -> 6
        return cls(
            expression=" ".join(parts),
            minutes=parsed[0],
            hours=parsed[1],
            days=parsed[2],
            months=parsed[3],
            weekdays=weekdays,
            any_day=parts[2].startswith("*"),
            any_weekday=parts[4].startswith("*"),
        )

    def matches_day(self, moment: datetime) -> bool:
        if moment.month not in self.months:
            return False
        dom, dow = moment.day in self.days, moment.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def matches(self, moment: datetime) -> bool:
        return moment.minute in self.minutes and moment.hour in self.hours and self.matches_day(moment)

    def previous(self, moment: datetime) -> datetime | None:
        """The latest tick at or before ``moment`` (to the minute), or None within 5 years."""
        end = moment.replace(second=0, microsecond=0)
        day = end.replace(hour=0, minute=0)
        for _ in range(MAX_LOOKBACK_DAYS):
            if self.matches_day(day):
                for hour in sorted(self.hours, reverse=True):
                    for minute in sorted(self.minutes, reverse=True):
                        tick = day.replace(hour=hour, minute=minute)
                        if tick <= end:
                            return tick
            day -= timedelta(days=1)
        return None
