"""The policies a backtest compares: ``never`` (no retrain), ``monthly`` (a schedule only) and
the one under test. All three are ordinary retraining policies, decided by the same ``decide``."""

from __future__ import annotations

from churnops.retraining import RetrainPolicy, parse_policy

NEVER = "never"
MONTHLY = "monthly"
POLICY = "policy"


def never(base: RetrainPolicy) -> RetrainPolicy:
    return parse_policy(
        {
            "name": NEVER,
            "schedule": None,
            "performance": {"enabled": False},
            "drift": {"enabled": False},
            "window_days": base.window_days,
            "label_maturity_days": base.label_maturity_days,
            "promote_to": "Production",
        },
        source="never policy",
    )


def monthly(base: RetrainPolicy) -> RetrainPolicy:
    """Retrain on the 1st of every month on the same window as ``base``, whatever monitoring says."""
    return parse_policy(
        {
            "name": MONTHLY,
            "schedule": "0 0 1 * *",
            "performance": {"enabled": False},
            "drift": {"enabled": False},
            "cooldown_hours": 0,
            "max_retrains": 1000,
            "period_days": 30,
            "window_days": base.window_days,
            "label_maturity_days": base.label_maturity_days,
            "promote_to": "Production",
        },
        source="monthly policy",
    )


def needs_monitoring(policy: RetrainPolicy) -> bool:
    """Whether a drift report can change this policy's decision (else the replay skips it)."""
    return policy.drift.enabled or policy.performance.enabled
