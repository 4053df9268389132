"""The retraining decision as a pure function: policy + now + monitoring history + past decisions.

Nothing here reads a clock, a database or MLflow: :func:`decide` gets everything as arguments
and returns a :class:`Decision` that the caller records. The rules:

- **performance** (latest window): fires when it has at least ``min_labelled_rows`` matured
  labels and its ROC-AUC is below ``min_roc_auc``, or more than ``max_drop`` below the version's
  own test ROC-AUC;
- **drift**: a window is *over the drift trigger* when its drifted share >= ``max_drifted_share``,
  its score JS distance >= ``max_prediction_js``, or (``concept``) concept drift fired; a window
  with ``insufficient_data`` is not. Fires when the last ``consecutive_windows`` windows are all
  over the trigger; a latest window over it with a shorter streak is ``not_k_consecutive``. (A
  *drifted window*, whose report status is ``drift``, is the monitoring vocabulary's term,
  :mod:`churnops.contracts.monitoring_terms`: the trigger's thresholds are the policy's own.);
- **scheduled**: fires when a cron tick lies after the last retrain, or, before the first
  retrain, after ``production_since`` (when the Production version was registered): a fresh
  install does not retrain at its first check; with neither, the schedule waits;
- the first due trigger in that order is the decision's trigger; it is suppressed by
  ``cooldown`` (a retrain less than ``cooldown_hours`` ago) and then by ``cap`` (already
  ``max_retrains`` retrains in the last ``period_days``). A retrain is a past decision whose
  retrain finished (registered, promoted or refused: ``PastDecision.fired``), at or before now:
  a fire nobody acted on, a claimed or failed retrain, and a time in the future count for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from churnops.contracts.monitoring_terms import (
    DRIFTED_SHARE,
    DRIFTED_WINDOWS,
    MATURED_LABELS,
    TERMS,
    ReportStatus,
    drifted_windows,
    is_drifted_window,
)
from churnops.contracts.stages import Trigger
from churnops.retraining.policy import RetrainPolicy

Suppression = Literal["cooldown", "cap", "not_k_consecutive", "pending"]
ORDER = (Trigger.PERFORMANCE, Trigger.DRIFT, Trigger.SCHEDULED)
INFO_CHECKS = ("latest_window", *TERMS)
"""Reasons that report a value (the latest window, the vocabulary's counts) and fire nothing."""


@dataclass(frozen=True)
class MonitoringWindow:
    """What one drift/performance report said about one window of the prediction log."""

    window_end: datetime
    status: str  # the drift report's: a ReportStatus value
    model_version: str
    drifted_share: float | None = None
    prediction_js: float | None = None
    concept_drifted: bool = False
    matured_roc_auc: float | None = None
    matured_labels: int = 0
    labels_start: datetime | None = None
    labels_end: datetime | None = None
    as_of: datetime | None = None
    report: str | None = None


@dataclass(frozen=True)
class PastDecision:
    """A past decision; ``fired``: a retrain ran on it to the end (see the module docstring)."""

    time: datetime
    fired: bool
    trigger: Trigger | None = None


@dataclass(frozen=True)
class Reason:
    """One check against its threshold (``met`` = the condition for retraining holds)."""

    trigger: Trigger
    check: str
    met: bool
    detail: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Decision:
    fired: bool
    trigger: Trigger | None
    suppressed_by: Suppression | None
    reasons: tuple[Reason, ...]
    time: datetime
    model_version: str | None
    report: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fired": self.fired,
            "trigger": None if self.trigger is None else self.trigger.value,
            "suppressed_by": self.suppressed_by,
            "time": self.time.isoformat(),
            "model_version": self.model_version,
            "report": self.report,
            "reasons": [{**asdict(r), "trigger": r.trigger.value} for r in self.reasons],
        }


def over_drift_trigger(window: MonitoringWindow, policy: RetrainPolicy) -> bool:
    """The window meets the policy's drift trigger (see the module docstring)."""
    rules = policy.drift
    if window.status == ReportStatus.INSUFFICIENT_DATA:
        return False
    share = window.drifted_share is not None and window.drifted_share >= rules.max_drifted_share
    js = window.prediction_js is not None and window.prediction_js >= rules.max_prediction_js
    return share or js or (rules.concept and window.concept_drifted)


def trigger_streak(windows: Sequence[MonitoringWindow], policy: RetrainPolicy) -> int:
    """How many of the most recent windows in a row are over the drift trigger."""
    streak = 0
    for window in reversed(windows):
        if not over_drift_trigger(window, policy):
            break
        streak += 1
    return streak


def _counts(windows: Sequence[MonitoringWindow]) -> list[Reason]:
    """The vocabulary's counts of the latest window, as reasons that fire nothing."""
    if not windows:
        return []
    w = windows[-1]
    where = f"report of the window ending {w.window_end.isoformat()}"
    if w.labels_start is not None and w.labels_end is not None:
        where += f"; predictions {w.labels_start.isoformat()} .. {w.labels_end.isoformat()}"
    if w.as_of is not None:
        where += f", labels known at {w.as_of.isoformat()}"
    streak = drifted_windows([v.status for v in windows])
    return [
        Reason(
            Trigger.PERFORMANCE,
            MATURED_LABELS,
            False,
            f"{TERMS[MATURED_LABELS]} {w.matured_labels:,} ({where})",
            float(w.matured_labels),
        ),
        Reason(
            Trigger.DRIFT,
            DRIFTED_SHARE,
            False,
            f"{TERMS[DRIFTED_SHARE]} {_fmt(w.drifted_share)} (features flagged by the monitoring policy)",
            w.drifted_share,
        ),
        Reason(
            Trigger.DRIFT,
            DRIFTED_WINDOWS,
            False,
            f"{TERMS[DRIFTED_WINDOWS]} {streak} (in a row; drift report status drift)",
            float(streak),
        ),
    ]


def decision_counts(reasons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The vocabulary's counts a recorded decision was taken on ({} when it saw no window)."""
    values = {r["check"]: r["value"] for r in reasons if r["check"] in TERMS}
    if not values:
        return {}
    return {
        MATURED_LABELS: int(values[MATURED_LABELS]),
        DRIFTED_SHARE: values[DRIFTED_SHARE],
        DRIFTED_WINDOWS: int(values[DRIFTED_WINDOWS]),
    }


def _performance(
    latest: MonitoringWindow | None, policy: RetrainPolicy, reference_roc_auc: float | None
) -> list[Reason]:
    rules, t = policy.performance, Trigger.PERFORMANCE
    if not rules.enabled:
        return [Reason(t, "enabled", False, "performance trigger disabled")]
    if latest is None or latest.matured_roc_auc is None or latest.matured_labels < rules.min_labelled_rows:
        rows = 0 if latest is None else latest.matured_labels
        why = (
            f"{rows:,} {TERMS[MATURED_LABELS]} < {rules.min_labelled_rows:,}"
            if rows < rules.min_labelled_rows
            else f"{rows:,} {TERMS[MATURED_LABELS]} but no ROC-AUC (one class only)"
        )
        return [
            Reason(
                t,
                "min_labelled_rows",
                False,
                f"{why}: not judged",
                float(rows),
                float(rules.min_labelled_rows),
            )
        ]
    auc = latest.matured_roc_auc
    reasons = [
        Reason(
            t,
            "min_roc_auc",
            auc < rules.min_roc_auc,
            f"matured ROC-AUC {auc:.4f} < floor {rules.min_roc_auc:.4f}",
            auc,
            rules.min_roc_auc,
        )
    ]
    if reference_roc_auc is not None:
        drop = reference_roc_auc - auc
        reasons.append(
            Reason(
                t,
                "max_drop",
                drop > rules.max_drop,
                f"drop {drop:.4f} (test {reference_roc_auc:.4f} - matured {auc:.4f}) > {rules.max_drop:.4f}",
                drop,
                rules.max_drop,
            )
        )
    return reasons


def _drift(windows: Sequence[MonitoringWindow], policy: RetrainPolicy) -> tuple[list[Reason], bool]:
    rules, t = policy.drift, Trigger.DRIFT
    if not rules.enabled:
        return [Reason(t, "enabled", False, "drift trigger disabled")], False
    streak = trigger_streak(windows, policy)
    k = rules.consecutive_windows
    over = f"drifted share >= {rules.max_drifted_share}, score JS >= {rules.max_prediction_js}" + (
        " or concept drift" if rules.concept else ""
    )
    reasons = [
        Reason(
            t,
            "consecutive_windows",
            streak >= k,
            f"{streak} window(s) in a row over the drift trigger ({over}), need {k}",
            float(streak),
            float(k),
        )
    ]
    if windows:
        w = windows[-1]
        kind = "a drifted window" if is_drifted_window(w.status) else "not a drifted window"
        reasons.append(
            Reason(
                t,
                "latest_window",
                over_drift_trigger(w, policy),
                f"window ending {w.window_end.isoformat()}: status {w.status} ({kind}), drifted share "
                f"{_fmt(w.drifted_share)} (trigger at >= {rules.max_drifted_share}), score JS "
                f"{_fmt(w.prediction_js)} (trigger at >= {rules.max_prediction_js}), concept drift "
                f"{'yes' if w.concept_drifted else 'no'}",
                w.drifted_share,
                rules.max_drifted_share,
            )
        )
    return reasons, streak >= 1 and streak < k


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _schedule(
    policy: RetrainPolicy, now: datetime, last: datetime | None, production_since: datetime | None
) -> list[Reason]:
    cron, t = policy.cron(), Trigger.SCHEDULED
    if cron is None:
        return [Reason(t, "schedule", False, "no schedule")]
    tick = cron.previous(now)
    anchor = last if last is not None else production_since
    due = tick is not None and anchor is not None and tick > anchor
    if last is not None:
        since = f"last retrain {last.isoformat()}"
    elif production_since is not None:
        since = f"never retrained; Production since {production_since.isoformat()}"
    else:
        since = "never retrained and no Production version: the schedule starts with the first one"
    return [
        Reason(
            t, "schedule", due, f"cron {cron.expression!r}: last tick {tick and tick.isoformat()}, {since}"
        )
    ]


def decide(
    *,
    policy: RetrainPolicy,
    now: datetime,
    windows: Sequence[MonitoringWindow],
    past: Sequence[PastDecision],
    reference_roc_auc: float | None = None,
    production_since: datetime | None = None,
) -> Decision:
    """Whether to retrain now, which trigger, and every value against its threshold."""
    if now.tzinfo is None:
        raise ValueError("now: must be timezone-aware (UTC)")
    seen = sorted((w for w in windows if w.window_end <= now), key=lambda w: w.window_end)
    retrains = sorted(p.time for p in past if p.fired and p.time <= now)
    last = retrains[-1] if retrains else None
    latest = seen[-1] if seen else None

    drift_reasons, short_streak = _drift(seen, policy)
    reasons = [
        *_performance(latest, policy, reference_roc_auc),
        *drift_reasons,
        *_schedule(policy, now, last, production_since),
        *_counts(seen),
    ]
    due = [t for t in ORDER if any(r.met for r in reasons if r.trigger == t and r.check not in INFO_CHECKS)]
    trigger = due[0] if due else None
    suppressed: Suppression | None = None
    if trigger is None:
        suppressed = "not_k_consecutive" if short_streak else None
    elif last is not None and now - last < timedelta(hours=policy.cooldown_hours):
        suppressed = "cooldown"
    elif sum(1 for t in retrains if t > now - timedelta(days=policy.period_days)) >= policy.max_retrains:
        suppressed = "cap"
    return Decision(
        fired=trigger is not None and suppressed is None,
        trigger=trigger,
        suppressed_by=suppressed,
        reasons=tuple(reasons),
        time=now,
        model_version=None if latest is None else latest.model_version,
        report=None if latest is None else latest.report,
    )
