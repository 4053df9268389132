"""One direction per metric: every metric training reports has one, and readers turn deltas by it."""

from __future__ import annotations

import numpy as np
import pytest

from churnops.contracts.bootstrap import HEADLINE_METRICS
from churnops.contracts.metric_directions import DIRECTIONS, LOWER_IS_BETTER, Direction, improvement
from churnops.training.metrics import compute_metrics


def test_every_metric_training_computes_has_a_direction() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1])
    s = np.linspace(0.05, 0.95, 10)
    assert list(compute_metrics(y, s, threshold=0.5)) == list(DIRECTIONS)
    assert set(HEADLINE_METRICS) <= set(DIRECTIONS)
    assert {"brier", "log_loss"} == LOWER_IS_BETTER


def test_an_improvement_is_positive_whichever_way_the_metric_points() -> None:
    assert improvement("roc_auc", 0.02) == 0.02
    assert improvement("brier", -0.02) == 0.02  # a lower Brier is better
    with pytest.raises(ValueError, match="base_rate"):
        improvement("base_rate", 0.1)
    with pytest.raises(ValueError, match="unknown_metric"):
        improvement("unknown_metric", 0.1)
    assert DIRECTIONS["base_rate"] is Direction.NONE
