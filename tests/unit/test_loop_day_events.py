"""Which of a day's outcomes reach a person (`churnops.jobs.loop_events`): the drift or
performance trigger firing, a retrain the gates refused, a promotion; a quiet day, a scheduled
retrain that passes silently to Staging only, and an unmonitored home produce nothing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from churnops.contracts.loop import LoopStep, StepStatus, loop_moment
from churnops.jobs import MONITOR_DAYS, DayEvents, LoopDay, LoopStepResult, loop_events, monitor_window
from monitoring.alerts import LoopEvent, NotifyResult

DAY = date(2024, 12, 4)


def _day(**steps: tuple[StepStatus, dict[str, Any]]) -> LoopDay:
    return LoopDay(
        model_name="churn",
        day=DAY,
        now=loop_moment(DAY),
        steps=tuple(
            LoopStepResult(step=LoopStep(name), status=status, detail=detail)
            for name, (status, detail) in steps.items()
        ),
    )


MONITORED = (StepStatus.DONE, {"version": "3", "drift": {"status": "drift", "report": "/h/reports/d.html"}})
QUIET = (StepStatus.DONE, {"fired": False, "trigger": None, "decision_id": 7})
NO_RETRAIN = (StepStatus.SKIPPED, {"reason": "no retrain due"})
NO_PROMOTE = (StepStatus.SKIPPED, {"reason": "no retrain"})


def _fired(trigger: str) -> tuple[StepStatus, dict[str, Any]]:
    return StepStatus.DONE, {"fired": True, "trigger": trigger, "decision_id": 8}


REFUSED = (
    StepStatus.SKIPPED,
    {
        "reason": "the gates refused the challenger: Production unchanged",
        "decision_id": 8,
        "state": "refused",
    },
)
FAILED_RETRAIN = (StepStatus.DONE, {"decision_id": 8, "version": None, "state": "failed", "message": "boom"})
FAILED = (
    StepStatus.SKIPPED,
    {"reason": "the retrain ended failed: boom: Production unchanged", "decision_id": 8, "state": "failed"},
)
RETRAINED = (StepStatus.DONE, {"decision_id": 8, "version": "4", "message": "gates passed"})
REFUSED_RETRAIN = (StepStatus.DONE, {"decision_id": 8, "version": None, "message": "roc_auc 0.71 < 0.75"})
PROMOTED = (StepStatus.DONE, {"decision_id": 8, "version": "4", "production": True})
STAGED = (StepStatus.DONE, {"decision_id": 8, "version": "4", "production": False})


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ({"monitor": MONITORED, "decide": QUIET, "retrain": NO_RETRAIN, "promote": NO_PROMOTE}, []),
        (
            {"monitor": MONITORED, "decide": _fired("drift"), "retrain": RETRAINED, "promote": PROMOTED},
            [("drift_fired", "3"), ("promoted", "4")],
        ),
        (
            {"monitor": MONITORED, "decide": _fired("drift"), "retrain": REFUSED_RETRAIN, "promote": REFUSED},
            [("drift_fired", "3"), ("retrain_refused", "3")],
        ),
        # a retrain that failed is not a refusal by the gates: no "Production unchanged by the gates"
        (
            {"monitor": MONITORED, "decide": _fired("drift"), "retrain": FAILED_RETRAIN, "promote": FAILED},
            [("drift_fired", "3")],
        ),
        (
            {"monitor": MONITORED, "decide": _fired("performance"), "retrain": RETRAINED, "promote": STAGED},
            [("drift_fired", "3")],
        ),
        (
            {"monitor": MONITORED, "decide": _fired("scheduled"), "retrain": RETRAINED, "promote": STAGED},
            [],
        ),
        # nothing in Production yet: no version to speak of, no event
        ({"monitor": (StepStatus.SKIPPED, {"reason": "no Production"}), "decide": _fired("drift")}, []),
    ],
    ids=[
        "quiet",
        "drift-promoted",
        "drift-refused",
        "drift-failed",
        "performance-staged",
        "schedule-staged",
        "no-production",
    ],
)
def test_the_events_of_a_day(steps: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    events = loop_events(day=_day(**steps))
    assert [(e.kind.value, e.version) for e in events] == expected
    for event in events:
        assert event.model == "churn" and event.at == loop_moment(DAY)
        assert event.window_end - event.window_start == timedelta(days=MONITOR_DAYS)
        assert (event.window_start, event.window_end) == monitor_window(loop_moment(DAY))
    refused = [e for e in events if e.kind.value == "retrain_refused"]
    assert all("roc_auc 0.71 < 0.75" in e.reason for e in refused)  # the gate's own words
    drift = [e for e in events if e.kind.value == "drift_fired"]
    assert all("/h/reports/d.html" in e.reason and "decision 8" in e.reason for e in drift)


class _Sink:
    def __init__(self) -> None:
        self.events: list[LoopEvent] = []

    def notify(self, event: LoopEvent) -> NotifyResult:
        self.events.append(event)
        return NotifyResult(event=event, sent=True, target="sink")


def test_day_events_hands_each_event_to_the_notifier_once() -> None:
    sink = _Sink()
    day = _day(monitor=MONITORED, decide=_fired("drift"), retrain=RETRAINED, promote=PROMOTED)
    assert DayEvents(notifier=sink).notify(day=day) == {"events": ["drift_fired", "promoted"], "sent": 2}
    assert [e.kind.value for e in sink.events] == ["drift_fired", "promoted"]
