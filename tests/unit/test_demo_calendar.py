"""The demo tells the same story in every month (issue 17.1).

Its data followed the month it ran in and its challenger's window was counted in days before
now: early in a month, a 28-, 30- or 31-day month moved a label snapshot in or out of the
window, so whether the challenger was promoted depended on the calendar (CI failed in December
2026). Here the demo's decision path runs for every month of a year, at several times of the
month, with the clock pinned: the calendar it builds, the rows each step reads (generated with
the demo's arguments) and the retraining check's decision must be the same every time.
The full demo (training, gates, promotion) runs in tests/integration/test_demo.py.
"""

from __future__ import annotations

import calendar
import hashlib
import itertools
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from churnops.commands.demo import DEMO_POLICY, DRIFT_MONTHS, DemoTimeline, demo_timeline
from churnops.contracts.columns import CREATED_TS, EVENT_TS, JOIN_KEY, LABEL
from churnops.contracts.stages import Trigger
from churnops.data.generate import generate_churn_data
from churnops.features.definitions import TTL
from churnops.features.freshness import freshness
from churnops.retraining import parse_policy
from churnops.retraining.decide import MonitoringWindow, decide

MONTHS, CUSTOMERS, SEED = 8, 2500, 42  # tests/integration/test_demo.py's run
YEAR = 2025


def times_of(month: int, year: int = YEAR) -> list[datetime]:
    """The 1st just after midnight and at noon, the 4th, the 7th and the month's last minute."""
    last = calendar.monthrange(year, month)[1]
    return [
        datetime(year, month, 1, 0, 0, 30, tzinfo=UTC),
        datetime(year, month, 1, 12, tzinfo=UTC),
        datetime(year, month, 4, 6, tzinfo=UTC),
        datetime(year, month, 7, 12, tzinfo=UTC),
        datetime(year, month, last, 23, 59, tzinfo=UTC),
    ]


def story(timeline: DemoTimeline) -> dict[str, object]:
    """The timeline in snapshot indices: what must not depend on the calendar."""
    index = {t: i for i, t in enumerate(timeline.snapshots)}
    assert timeline.drift_from is not None and timeline.train_until is not None
    drift = datetime.combine(timeline.drift_from, datetime.min.time(), tzinfo=UTC)
    return {
        "snapshots": len(timeline.snapshots),
        "drift_from": index[drift],
        "first_model_labels": [i for i, t in enumerate(timeline.snapshots) if t <= timeline.train_until],
        "monitored": [index[t] for t in timeline.monitored],
        "challenger_labels": [index[t] for t in timeline.challenger_labels],
    }


def check_the_calendar(timeline: DemoTimeline) -> None:
    """What the demo needs from the clock, whatever the day: consecutive month starts, the
    newest served fresh, the monitored windows ended and their labels known at now."""
    now, snapshots = timeline.now, timeline.snapshots
    assert all(t.day == 1 and t.hour == 0 for t in snapshots)
    assert all(
        (b.year * 12 + b.month) - (a.year * 12 + a.month) == 1 for a, b in itertools.pairwise(snapshots)
    )
    assert snapshots[-1] <= now - timedelta(days=1)  # drift report as_of = newest + 1 day
    fresh = freshness(data_time=timeline.last, ttl={str(v): ttl for v, ttl in TTL.items()}, now=now)
    assert fresh.servable, (now, timeline.last)
    _first, newest = timeline.challenger_labels
    assert snapshots.index(newest) + 1 < len(snapshots)  # its label is known: the next snapshot is taken


def rows_digest(frame: pd.DataFrame, snapshots: tuple[datetime, ...]) -> str:
    """The generated rows with each snapshot time replaced by its index (and `created` by its
    delay): equal digests, equal data in every step of the story."""
    index = {pd.Timestamp(t): i for i, t in enumerate(snapshots)}
    relative = frame.assign(
        **{
            EVENT_TS: frame[EVENT_TS].map(index),
            CREATED_TS: (frame[CREATED_TS] - frame[EVENT_TS]).dt.total_seconds(),
        }
    )
    assert relative[EVENT_TS].notna().all()
    return hashlib.sha256(pd.util.hash_pandas_object(relative, index=False).to_numpy().tobytes()).hexdigest()


def demo_windows(timeline: DemoTimeline) -> list[MonitoringWindow]:
    """The two drift reports the demo logs before its check (the month before the price war:
    no drift; the newest month: one of 19 features drifted), as the check reads them back."""
    before, last = timeline.monitored
    return [
        MonitoringWindow(
            window_end=before + timedelta(minutes=1),
            status="no_drift",
            model_version="1",
            drifted_share=0.0,
            prediction_js=0.031,
        ),
        MonitoringWindow(
            window_end=last + timedelta(minutes=1),
            status="drift",
            model_version="1",
            drifted_share=1 / 19,
            prediction_js=0.037,
        ),
    ]


def test_the_demo_decides_the_same_in_every_month() -> None:
    policy = parse_policy(DEMO_POLICY, source="demo policy")
    expected_story = {
        "snapshots": MONTHS,
        "drift_from": MONTHS - DRIFT_MONTHS,
        "first_model_labels": list(range(MONTHS - DRIFT_MONTHS)),
        "monitored": [MONTHS - DRIFT_MONTHS - 1, MONTHS - 1],
        "challenger_labels": [MONTHS - DRIFT_MONTHS - 1, MONTHS - 2],
    }
    digests: set[str] = set()
    decisions: set[tuple[object, ...]] = set()
    moments = [now for month in range(1, 13) for now in times_of(month)] + times_of(2, year=2024)
    for now in moments:
        timeline = demo_timeline(now=now, months=MONTHS)
        assert story(timeline) == expected_story, now
        check_the_calendar(timeline)
        decision = decide(
            policy=policy, now=now, windows=demo_windows(timeline), past=[], production_since=now
        )
        decisions.add(
            (
                decision.fired,
                decision.trigger,
                decision.suppressed_by,
                *((r.trigger, r.check, r.met) for r in decision.reasons),
            )
        )
        if now.day == 7:  # the data: once per month (the generator runs in about a second)
            data = generate_churn_data(
                customers=CUSTOMERS,
                months=MONTHS,
                seed=SEED,
                start=timeline.start,
                data_drift_from=timeline.drift_from,
                concept_drift_from=timeline.drift_from,
            )
            digests.add(rows_digest(data.frame, timeline.snapshots))
    assert len(digests) == 1  # the same rows, labels and drift in every month
    assert len(decisions) == 1, decisions
    (only,) = decisions
    assert only[:3] == (True, Trigger.DRIFT, None)


@pytest.mark.parametrize("now", [datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 12, 7, 12, tzinfo=UTC)])
def test_the_newest_snapshot_is_the_month_a_day_before_now(now: datetime) -> None:
    timeline = demo_timeline(now=now, months=MONTHS)
    expected = (now - timedelta(days=1)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert timeline.last == expected
    assert timeline.start == (expected - pd.DateOffset(months=MONTHS - 1)).date()


def test_the_challengers_labels_are_whole_snapshots() -> None:
    """The window the demo passes to the retrain selects the label rows of exactly the
    DRIFT_MONTHS snapshots before the newest, on any day."""
    for now in (datetime(2025, 3, 1, 12, tzinfo=UTC), datetime(2025, 7, 31, 23, 59, tzinfo=UTC)):
        timeline = demo_timeline(now=now, months=MONTHS)
        data = generate_churn_data(
            customers=300, months=MONTHS, seed=SEED, start=timeline.start, data_drift_from=timeline.drift_from
        )
        first, newest = timeline.challenger_labels
        chosen = data.frame[(data.frame[EVENT_TS] >= first) & (data.frame[EVENT_TS] <= newest)]
        assert sorted(chosen[EVENT_TS].unique()) == [
            pd.Timestamp(t) for t in timeline.snapshots[-DRIFT_MONTHS - 1 : -1]
        ]
        assert chosen[[JOIN_KEY, LABEL]].notna().all().all()
