"""One day of the loop: its steps, in order, and the moment a day runs "as of".

``churnops loop run``, the Dagster job (one op per step) and the registry's ``loop_steps`` table
(one row per finished step of a model's day) share these names, so a day started by one and
rerun by the other replays the steps already recorded instead of running them again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum


class LoopStep(StrEnum):
    FEATURES = "features"  # refresh the online store as of the day
    SCORE = "score"  # batch-score the active customers with Production into the prediction log
    MONITOR = "monitor"  # drift report of the Production version, live performance
    DECIDE = "decide"  # the retraining check, recorded in retrain_decisions
    RETRAIN = "retrain"  # challenger on the policy's window, gated against the champion
    PROMOTE = "promote"  # Staging -> the policy's stage, or the gates' refusal recorded
    COMPACT = "compact"  # the prediction log's closed day partitions, one file each
    ALERT = "alert"  # the day's events (drift fired, retrain refused, promoted) to the notifier


LOOP_STEPS: tuple[LoopStep, ...] = tuple(LoopStep)
"""The steps of one day, in the order they run."""


class StepStatus(StrEnum):
    DONE = "done"  # the step ran and did its work
    SKIPPED = "skipped"  # nothing was due (no Production version, the check did not fire, ...)


def loop_moment(day: date) -> datetime:
    """The "now" of day ``day``'s loop: its first instant (UTC midnight). Everything before it
    is closed (yesterday's serving traffic, the log partitions compaction merges); the day's batch
    scores are stamped with it, so they land in the day's own log partition."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
