"""The candidate's gain over Production on the same rows, with its paired-bootstrap interval.

A pure helper for the relative gate (:mod:`churnops.training.gates`): both models' scores on
the **same** test rows go through :func:`churnops.contracts.bootstrap.bootstrap_intervals`
(the rule `churnops registry compare` uses), seeded, so the interval is deterministic. The gain
is oriented so that positive means "the candidate is better" (for ``brier``, lower is better:
the gain is production - candidate).

The interval is two-sided at ``level``: the lower bound of a 95% interval is the 2.5th
percentile of the resampled gains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from churnops.contracts.bootstrap import bootstrap_intervals
from churnops.contracts.metric_directions import Direction, direction

_CANDIDATE, _PRODUCTION = 1, 0


@dataclass(frozen=True)
class GainInterval:
    """The gain of ``metric`` (candidate over Production; positive = better) on ``rows`` rows."""

    metric: str
    estimate: float
    low: float
    high: float
    level: float
    resamples: int
    used: int
    """Resamples the interval rests on (a resample with a single class has no ROC-AUC)."""
    seed: int
    rows: int

    def shown(self, *, decimals: int = 4) -> str:
        """``+0.0022 [95% CI -0.0041, +0.0087]``."""
        return (
            f"{signed(self.estimate, decimals)} [{level_label(self.level)} CI "
            f"{signed(self.low, decimals)}, {signed(self.high, decimals)}]"
        )


def signed(value: float, decimals: int) -> str:
    """``+0.0022`` / ``-0.0041``; a value that rounds to zero is ``+0.0000`` (never ``-0.0000``)."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:+.{decimals}f}"
    return "+" + text[1:] if text.startswith("-") and float(text) == 0 else text


def level_label(level: float) -> str:
    """``95%``, ``99.5%``."""
    return f"{round(level * 100, 4):g}%"


def gain_interval(
    *,
    labels: npt.ArrayLike,
    candidate_scores: npt.ArrayLike,
    production_scores: npt.ArrayLike,
    metric: str,
    level: float,
    resamples: int,
    seed: int,
) -> GainInterval:
    """The paired-bootstrap interval of the candidate's gain in ``metric`` over Production,
    both scored on the same ``labels`` rows (row ``i`` of each array is the same customer)."""
    sizes = {len(np.asarray(a)) for a in (labels, candidate_scores, production_scores)}
    if len(sizes) != 1:
        raise ValueError(f"labels and both models' scores must cover the same rows, got sizes {sizes}")
    result = bootstrap_intervals(
        labels=labels,
        scores={_CANDIDATE: candidate_scores, _PRODUCTION: production_scores},
        baseline=_PRODUCTION,
        metrics=(metric,),
        resamples=resamples,
        confidence=level,
        seed=seed,
    )
    delta = result.deltas[_CANDIDATE][metric]
    estimate, low, high = delta.estimate, delta.low, delta.high
    if direction(metric) is Direction.LOWER:
        estimate, low, high = -estimate, -high, -low
    return GainInterval(
        metric=metric,
        estimate=estimate,
        low=low,
        high=high,
        level=level,
        resamples=resamples,
        used=delta.used,
        seed=seed,
        rows=result.rows,
    )
