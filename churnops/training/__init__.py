"""Training on a Feast FeatureService, tracked in MLflow, with declarative quality gates.

Public API::

    from churnops.training import train, TrainOptions, TrainResult, load_policy, evaluate_gates

Importing this package imports scikit-learn and pandas but touches nothing: no MLflow URI, no
files, no threads.
"""

from churnops.training.errors import GatePolicyError, MetricError, TrainingDataError, TrainingError
from churnops.training.gain import GainInterval, gain_interval
from churnops.training.gates import (
    GatePolicy,
    GateReport,
    GateResult,
    MetricsSnapshot,
    default_policy_path,
    evaluate_gates,
    load_policy,
)
from churnops.training.pipeline import TrainOptions, TrainResult, train
from churnops.training.split import SplitPolicy

__all__ = [
    "GainInterval",
    "GatePolicy",
    "GatePolicyError",
    "GateReport",
    "GateResult",
    "MetricError",
    "MetricsSnapshot",
    "SplitPolicy",
    "TrainOptions",
    "TrainResult",
    "TrainingDataError",
    "TrainingError",
    "default_policy_path",
    "evaluate_gates",
    "gain_interval",
    "load_policy",
    "train",
]
