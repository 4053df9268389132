"""Retraining: the declarative policy, the pure decision, and the retrain run."""

from churnops.retraining.decide import Decision, MonitoringWindow, PastDecision, Reason, decide
from churnops.retraining.policy import RetrainPolicy, RetrainPolicyError, load_policy, parse_policy

__all__ = [
    "Decision",
    "MonitoringWindow",
    "PastDecision",
    "Reason",
    "RetrainPolicy",
    "RetrainPolicyError",
    "decide",
    "load_policy",
    "parse_policy",
]
