"""decide(): the retraining decision against brute-force oracles (hypothesis) for the
k-consecutive drift rule, the cooldown and the per-period cap, plus the performance trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from churnops.contracts.stages import Trigger
from churnops.retraining import MonitoringWindow, PastDecision, decide, parse_policy

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def _window(
    days_ago: int,
    *,
    share: float = 0.0,
    js: float = 0.0,
    concept: bool = False,
    status: str = "ok",
    auc: float | None = None,
    rows: int = 0,
) -> MonitoringWindow:
    return MonitoringWindow(
        window_end=NOW - timedelta(days=days_ago),
        status=status,
        model_version="1",
        drifted_share=share,
        prediction_js=js,
        concept_drifted=concept,
        matured_roc_auc=auc,
        matured_labels=rows,
        report=f"runs:/r{days_ago}/drift",
    )


DRIFT_ONLY = {"schedule": None, "performance": {"enabled": False}}

# A window: (drifted share, score JS, concept flag, status)
window_values = st.tuples(
    st.sampled_from([0.0, 0.1, 0.29, 0.3, 0.5, 1.0]),
    st.sampled_from([0.0, 0.05, 0.1, 0.3]),
    st.booleans(),
    st.sampled_from(["ok", "drift", "insufficient_data"]),
)


def _oracle_drifted(values: tuple[float, float, bool, str], *, concept_counts: bool) -> bool:
    share, js, concept, status = values
    if status == "insufficient_data":
        return False
    return share >= 0.3 or js >= 0.1 or (concept_counts and concept)


@hsettings(max_examples=200, deadline=None)
@given(
    values=st.lists(window_values, max_size=8),
    k=st.integers(1, 5),
    concept_counts=st.booleans(),
)
def test_drift_fires_exactly_when_the_last_k_windows_are_drifted(
    values: list[tuple[float, float, bool, str]], k: int, concept_counts: bool
) -> None:
    policy = parse_policy(
        {
            **DRIFT_ONLY,
            "drift": {
                "consecutive_windows": k,
                "concept": concept_counts,
                "max_drifted_share": 0.3,
                "max_prediction_js": 0.1,
            },
        }
    )
    windows = [
        _window(len(values) - i, share=s, js=j, concept=c, status=st_)
        for i, (s, j, c, st_) in enumerate(values)
    ]
    flags = [_oracle_drifted(v, concept_counts=concept_counts) for v in values]
    expected = len(flags) >= k and all(flags[-k:])
    decision = decide(policy=policy, now=NOW, windows=windows, past=[])
    assert decision.fired is expected
    assert decision.trigger == (Trigger.DRIFT if expected else None)
    short = bool(flags) and flags[-1] and not expected
    assert (decision.suppressed_by == "not_k_consecutive") is short
    if windows:
        assert decision.report == windows[-1].report


# Past decisions: (hours before now, fired)
past_values = st.lists(st.tuples(st.integers(0, 24 * 90), st.booleans()), max_size=12)


@hsettings(max_examples=300, deadline=None)
@given(
    past=past_values,
    cooldown_hours=st.sampled_from([0, 1, 24, 72, 24 * 14]),
    max_retrains=st.integers(1, 5),
    period_days=st.sampled_from([1, 7, 30]),
)
def test_cooldown_then_cap_suppress_a_due_trigger(
    past: list[tuple[int, bool]], cooldown_hours: int, max_retrains: int, period_days: int
) -> None:
    policy = parse_policy(
        {
            **DRIFT_ONLY,
            "drift": {"consecutive_windows": 1},
            "cooldown_hours": cooldown_hours,
            "max_retrains": max_retrains,
            "period_days": period_days,
        }
    )
    windows = [_window(0, share=1.0)]  # drift is due
    decisions = [PastDecision(time=NOW - timedelta(hours=h), fired=f, trigger=Trigger.DRIFT) for h, f in past]
    fired_ages = [h for h, f in past if f]
    in_cooldown = any(h < cooldown_hours for h in fired_ages)
    over_cap = sum(1 for h in fired_ages if h < period_days * 24) >= max_retrains
    decision = decide(policy=policy, now=NOW, windows=windows, past=decisions)
    expected = "cooldown" if in_cooldown else "cap" if over_cap else None
    assert decision.suppressed_by == expected
    assert decision.fired is (expected is None)
    assert decision.trigger is Trigger.DRIFT


def test_decisions_in_the_future_and_unfired_ones_do_not_count() -> None:
    policy = parse_policy({**DRIFT_ONLY, "drift": {"consecutive_windows": 1}, "cooldown_hours": 48})
    past = [
        PastDecision(time=NOW + timedelta(hours=1), fired=True),
        PastDecision(time=NOW - timedelta(hours=1), fired=False),
    ]
    assert decide(policy=policy, now=NOW, windows=[_window(0, share=1.0)], past=past).fired


def test_performance_fires_on_the_floor_or_the_drop_with_enough_labels() -> None:
    policy = parse_policy(
        {
            "schedule": None,
            "drift": {"enabled": False},
            "performance": {"min_roc_auc": 0.7, "max_drop": 0.05, "min_labelled_rows": 100},
        }
    )
    cases = [
        (_window(0, auc=0.65, rows=500), 0.70, True, "min_roc_auc"),
        (_window(0, auc=0.74, rows=500), 0.80, True, "max_drop"),
        (_window(0, auc=0.78, rows=500), 0.80, False, None),
        (_window(0, auc=0.50, rows=99), 0.80, False, None),  # too few matured labels
    ]
    for window, reference, fired, check in cases:
        decision = decide(policy=policy, now=NOW, windows=[window], past=[], reference_roc_auc=reference)
        assert decision.fired is fired, (window, decision)
        met = [r.check for r in decision.reasons if r.met]
        assert met == ([check] if check else []), decision.reasons
        values = {r.check: (r.value, r.threshold) for r in decision.reasons}
        if rows_reason := values.get("min_labelled_rows"):
            assert rows_reason == (99.0, 100.0)


def test_performance_wins_over_drift_and_schedule() -> None:
    policy = parse_policy({"schedule": "0 * * * *", "drift": {"consecutive_windows": 1}})
    decision = decide(
        policy=policy,
        now=NOW,
        windows=[_window(0, share=1.0, auc=0.5, rows=1000)],
        past=[],
        reference_roc_auc=0.8,
    )
    assert decision.trigger is Trigger.PERFORMANCE
    assert {r.trigger for r in decision.reasons if r.met} >= {Trigger.PERFORMANCE, Trigger.DRIFT}


def test_schedule_fires_once_per_tick() -> None:
    policy = parse_policy(
        {
            "schedule": "0 3 * * *",
            "drift": {"enabled": False},
            "performance": {"enabled": False},
            "cooldown_hours": 0,
        }
    )
    # a fresh install (never retrained) counts from when Production was registered ...
    fresh = decide(policy=policy, now=NOW, windows=[], past=[], production_since=NOW.replace(hour=4))
    assert not fresh.fired, fresh.reasons
    since_yesterday = NOW.replace(hour=4) - timedelta(days=1)
    assert decide(policy=policy, now=NOW, windows=[], past=[], production_since=since_yesterday).fired
    # ... and with no Production version at all the schedule has nothing to count from
    assert not decide(policy=policy, now=NOW, windows=[], past=[]).fired
    # a past retrain is the anchor, whatever Production's age
    after_tick = [PastDecision(time=NOW.replace(hour=3, minute=5), fired=True)]
    assert not decide(
        policy=policy, now=NOW, windows=[], past=after_tick, production_since=since_yesterday
    ).fired
    before_tick = [PastDecision(time=NOW.replace(hour=2, minute=59), fired=True)]
    assert decide(policy=policy, now=NOW, windows=[], past=before_tick).trigger is Trigger.SCHEDULED


def test_windows_after_now_are_ignored_and_naive_now_is_refused() -> None:
    policy = parse_policy({**DRIFT_ONLY, "drift": {"consecutive_windows": 1}})
    future = MonitoringWindow(
        window_end=NOW + timedelta(days=1), status="drift", model_version="1", drifted_share=1.0
    )
    assert not decide(policy=policy, now=NOW, windows=[future], past=[]).fired
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(policy=policy, now=NOW.replace(tzinfo=None), windows=[], past=[])


def test_only_finished_retrains_count_for_the_cooldown_and_the_cap() -> None:
    from churnops.contracts.decisions import DecisionState
    from churnops.retraining.check import past_retrains
    from registry_ext.decisions import DecisionRecord

    policy = parse_policy(
        {"schedule": "0 * * * *", "cooldown_hours": 24, "max_retrains": 1, "period_days": 30}
    )

    def record(i: int, hours: float, state: DecisionState) -> DecisionRecord:
        return DecisionRecord(
            id=i,
            name="churn",
            time=NOW - timedelta(hours=hours),
            fired=state != DecisionState.NOT_FIRED,
            trigger=Trigger.SCHEDULED,
            suppressed_by=None,
            model_version="1",
            report=None,
            policy="p",
            actor="t",
            reasons=[],
            state=state,
        )

    unfinished = [DecisionState.FIRED, DecisionState.CLAIMED, DecisionState.TRAINED, DecisionState.FAILED]
    for state in unfinished:
        past = past_retrains([record(1, 2, state)])
        verdict = decide(
            policy=policy, now=NOW, windows=[], past=past, production_since=NOW - timedelta(days=9)
        )
        assert verdict.fired, (state, verdict.suppressed_by)
    for state, hours, suppressed in [
        (DecisionState.REGISTERED, 2, "cooldown"),
        (DecisionState.PROMOTED, 2, "cooldown"),
        (DecisionState.REFUSED, 2, "cooldown"),
        (DecisionState.PROMOTED, 48, "cap"),
    ]:
        past = past_retrains([record(1, hours, state)])
        verdict = decide(
            policy=policy, now=NOW, windows=[], past=past, production_since=NOW - timedelta(days=9)
        )
        assert verdict.suppressed_by == suppressed, state
