"""Which way is better, per metric: the one table gates, the promotion gain, ``registry
compare`` (CLI and HTML) and monitoring read.

Every metric training computes (``churnops.training.metrics.METRICS``) has a direction; a
metric with none (the base rate describes the rows, not the model) cannot be turned into an
improvement, and asking is an error rather than a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Direction(StrEnum):
    HIGHER = "higher is better"
    LOWER = "lower is better"
    NONE = "neither (describes the rows)"


DIRECTIONS: Mapping[str, Direction] = MappingProxyType(
    {
        "roc_auc": Direction.HIGHER,
        "pr_auc": Direction.HIGHER,
        "pr_auc_lift": Direction.HIGHER,
        "brier": Direction.LOWER,
        "log_loss": Direction.LOWER,
        "top_decile_lift": Direction.HIGHER,
        "recall_at_threshold": Direction.HIGHER,
        "precision_at_threshold": Direction.HIGHER,
        "base_rate": Direction.NONE,
    }
)
"""Every metric a split is evaluated on, in the order training reports them."""

METRIC_NAMES: tuple[str, ...] = tuple(DIRECTIONS)
LOWER_IS_BETTER = frozenset(m for m, d in DIRECTIONS.items() if d is Direction.LOWER)


def direction(metric: str) -> Direction:
    """The metric's direction; ``ValueError`` naming the known ones for a metric not in the table."""
    try:
        return DIRECTIONS[metric]
    except KeyError:
        raise ValueError(f"no direction for metric {metric!r}; known: {', '.join(DIRECTIONS)}") from None


def improvement(metric: str, delta: float) -> float:
    """``delta`` (new - old) turned so that positive means better (Brier: lower is better)."""
    way = direction(metric)
    if way is Direction.NONE:
        raise ValueError(f"metric {metric!r} has no better direction: {way.value}")
    return -delta if way is Direction.LOWER else delta
