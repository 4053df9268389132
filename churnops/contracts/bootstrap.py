"""Paired bootstrap confidence intervals for the headline metrics of versions scored on the same rows.

One home for the rule both users share: `registry compare` (registry_ext.compare) and the
promotion gate (churnops.training.gates: the interval of the gain over Production).

A resample is a vector of row counts (multinomial, ``n`` draws over ``n`` rows): every version
is scored on the same resample, so the interval of a difference is paired (the row-to-row noise
both versions share cancels). Each metric is computed on the counts as weights, which equals
computing it on the materialized resample (rows repeated ``count`` times, in row order):

- ``roc_auc``: the Mann-Whitney statistic, ties counted one half (sklearn's ``roc_auc_score``);
- ``pr_auc``: average precision, sum over distinct scores of recall step times precision
  (sklearn's ``average_precision_score``);
- ``brier``: mean squared error of the probability;
- ``top_decile_lift``: positive rate of the ``ceil(n / 10)`` highest-scored rows over the
  overall positive rate, ties in score broken by row order (training's ``top_decile_lift``).

A resample without both classes has no ROC-AUC / PR-AUC / lift: it is left out of those
intervals (``used`` says how many resamples each interval rests on). Intervals are percentile
intervals (``numpy.percentile``, linear interpolation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

HEADLINE_METRICS = ("roc_auc", "pr_auc", "brier", "top_decile_lift")
"""What a reviewer reads first (their directions: ``churnops.contracts.metric_directions``)."""

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate (on the rows as they are) and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    used: int

    def to_json(self) -> dict[str, float | int | None]:
        def clean(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "estimate": clean(self.estimate),
            "low": clean(self.low),
            "high": clean(self.high),
            "used": self.used,
        }


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """Per version and metric an interval, and per non-baseline version the paired difference."""

    rows: int
    resamples: int
    confidence: float
    seed: int
    baseline: int
    values: dict[int, dict[str, Interval]]
    deltas: dict[int, dict[str, Interval]]


def draw_counts(*, rows: int, resamples: int, seed: int, first: int = 0) -> npt.NDArray[np.int64]:
    """Bootstrap counts of resamples ``first .. first + resamples - 1`` (each sums to ``rows``).

    Resample ``i`` has its own random stream (spawned from ``seed``), so any chunking of the
    resamples draws the same rows.
    """
    children = np.random.SeedSequence(seed).spawn(first + resamples)[first:]
    out = np.empty((resamples, rows), dtype=np.int64)
    for i, child in enumerate(children):
        drawn = np.random.default_rng(child).integers(0, rows, size=rows)
        out[i] = np.bincount(drawn, minlength=rows)
    return out


def weighted_metrics(
    *, labels: npt.ArrayLike, scores: npt.ArrayLike, counts: npt.ArrayLike
) -> dict[str, Floats]:
    """Every headline metric for each row of ``counts`` (NaN where a metric is undefined)."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    w = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    yf = y.astype(np.float64)
    n = w.sum(axis=1)
    total_pos = w @ yf
    total_neg = n - total_pos
    both = (total_pos > 0) & (total_neg > 0)

    # Tie groups of equal score, ascending: group totals from cumulative sums at group ends.
    order = np.argsort(s, kind="stable")
    sorted_scores = s[order]
    last = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    w_sorted = w[:, order]
    cum_all = np.cumsum(w_sorted, axis=1)[:, last]
    cum_pos = np.cumsum(w_sorted * yf[order], axis=1)[:, last]
    pos_g = np.diff(cum_pos, axis=1, prepend=0.0)
    neg_g = np.diff(cum_all - cum_pos, axis=1, prepend=0.0)

    with np.errstate(divide="ignore", invalid="ignore"):
        neg_below = (cum_all - cum_pos) - neg_g
        auc = (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1) / (total_pos * total_neg)
        # Average precision: thresholds at distinct scores, descending.
        tp = total_pos[:, None] - (cum_pos - pos_g)  # weight of positives with score >= the group's
        taken_all = n[:, None] - (cum_all - (pos_g + neg_g))
        precision = np.where(taken_all > 0, tp / np.where(taken_all > 0, taken_all, 1.0), 0.0)
        ap = (pos_g * precision).sum(axis=1) / total_pos

        brier = (w @ (s - yf) ** 2) / n

        # Top decile: highest scores first, ties by row order (stable sort of -score).
        top_order = np.argsort(-s, kind="stable")
        k = np.ceil(n / 10.0)[:, None]
        w_top = w[:, top_order]
        before = np.cumsum(w_top, axis=1) - w_top
        taken = np.clip(k - before, 0.0, w_top)
        top_rate = (taken @ yf[top_order]) / k[:, 0]
        lift = top_rate / (total_pos / n)

    nan = np.full(w.shape[0], np.nan)
    return {
        "roc_auc": np.where(both, auc, nan),
        "pr_auc": np.where(both, ap, nan),
        "brier": np.where(n > 0, brier, nan),
        "top_decile_lift": np.where(both, lift, nan),
    }


def _interval(estimate: float, samples: Floats, confidence: float) -> Interval:
    finite = samples[np.isfinite(samples)]
    if len(finite) == 0:
        return Interval(estimate, math.nan, math.nan, 0)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(estimate), float(low), float(high), len(finite))


def bootstrap_intervals(
    *,
    labels: npt.ArrayLike,
    scores: Mapping[int, npt.ArrayLike],
    baseline: int,
    metrics: Sequence[str] = HEADLINE_METRICS,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int | None = None,
) -> BootstrapResult:
    """Paired bootstrap of ``metrics`` for every version in ``scores`` on the same ``labels`` rows.

    Deltas are ``version - baseline`` on each resample.
    """
    y = np.asarray(labels, dtype=np.int64)
    if baseline not in scores:
        raise ValueError(f"baseline version {baseline} is not among the scored versions {sorted(scores)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if len(y) == 0 or resamples < 1:
        raise ValueError("bootstrap needs at least one row and one resample")
    unknown = [m for m in metrics if m not in HEADLINE_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(HEADLINE_METRICS)}")
    step = chunk or max(1, 2_000_000 // len(y))  # a few MB of weights per step whatever the rows
    ones = np.ones((1, len(y)))
    arrays = {v: np.asarray(raw, dtype=np.float64) for v, raw in scores.items()}
    estimates: dict[int, dict[str, float]] = {}
    for version, s in arrays.items():
        point = weighted_metrics(labels=y, scores=s, counts=ones)
        estimates[version] = {m: float(point[m][0]) for m in metrics}
    samples: dict[int, dict[str, list[Floats]]] = {v: {m: [] for m in metrics} for v in arrays}
    for start in range(0, resamples, step):
        # one draw per chunk shared by every version: the resamples are paired
        counts = draw_counts(rows=len(y), resamples=min(step, resamples - start), seed=seed, first=start)
        for version, s in arrays.items():
            drawn = weighted_metrics(labels=y, scores=s, counts=counts)
            for m in metrics:
                samples[version][m].append(drawn[m])
    joined = {v: {m: np.concatenate(p) for m, p in parts.items()} for v, parts in samples.items()}
    values = {v: {m: _interval(estimates[v][m], joined[v][m], confidence) for m in metrics} for v in scores}
    deltas = {
        v: {
            m: _interval(
                estimates[v][m] - estimates[baseline][m], joined[v][m] - joined[baseline][m], confidence
            )
            for m in metrics
        }
        for v in scores
        if v != baseline
    }
    return BootstrapResult(
        rows=len(y),
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        baseline=baseline,
        values=values,
        deltas=deltas,
    )
