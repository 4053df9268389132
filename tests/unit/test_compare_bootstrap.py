"""The paired bootstrap of `registry compare` against a brute-force oracle: every resample
materialized (rows repeated as drawn) and scored with sklearn / training's own metric code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from churnops.contracts.bootstrap import HEADLINE_METRICS, bootstrap_intervals, draw_counts, weighted_metrics
from churnops.training.metrics import top_decile_lift


def oracle_metrics(y: np.ndarray, s: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """The metrics of the resample itself: each row repeated ``count`` times, in row order."""
    index = np.repeat(np.arange(len(y)), counts)
    ry, rs = y[index], s[index]
    both = 0 < ry.sum() < len(ry)
    return {
        "roc_auc": float(roc_auc_score(ry, rs)) if both else math.nan,
        "pr_auc": float(average_precision_score(ry, rs)) if both else math.nan,
        "brier": float(brier_score_loss(ry, rs)) if len(ry) else math.nan,
        "top_decile_lift": top_decile_lift(ry, rs) if both else math.nan,
    }


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


rows = st.integers(min_value=2, max_value=14)


@st.composite
def scored_rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(rows)
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.int64)
    # few distinct scores: ties between rows of either class are the subtle part
    s = np.array(draw(st.lists(st.sampled_from([0.05, 0.2, 0.2001, 0.5, 0.9]), min_size=n, max_size=n)))
    seed = draw(st.integers(0, 2**16))
    counts = draw_counts(rows=n, resamples=8, seed=seed)
    return y, s, counts


# 120 cases x 8 resamples: every tie pattern of up to 14 rows over 5 score levels shows up well
# before that (the oracle is sklearn's, ~1 ms a metric).
@settings(max_examples=120, deadline=None)
@given(scored_rows())
def test_weighted_metrics_equal_the_metrics_of_the_materialized_resample(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    y, s, counts = case
    fast = weighted_metrics(labels=y, scores=s, counts=counts)
    for b, row in enumerate(counts):
        expected = oracle_metrics(y, s, row)
        for metric in HEADLINE_METRICS:
            assert same(float(fast[metric][b]), expected[metric]), (metric, y, s, row)


def test_counts_are_bootstrap_draws() -> None:
    counts = draw_counts(rows=7, resamples=50, seed=3)
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all() and (counts >= 0).all()
    assert (draw_counts(rows=7, resamples=50, seed=3) == counts).all()


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=6, max_value=30), st.integers(0, 2**16))
def test_intervals_are_percentiles_of_the_paired_resampled_metrics(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.4).astype(np.int64)
    y[:2] = [0, 1]  # both classes on the rows as they are
    a = np.round(rng.uniform(size=n), 2)
    b = np.clip(a + rng.normal(0, 0.2, n), 0, 1)
    result = bootstrap_intervals(labels=y, scores={1: a, 2: b}, baseline=1, resamples=40, seed=seed, chunk=7)
    counts = draw_counts(rows=n, resamples=40, seed=seed)
    per = {v: [oracle_metrics(y, s, c) for c in counts] for v, s in ((1, a), (2, b))}
    for metric in HEADLINE_METRICS:
        for version, scores in ((1, a), (2, b)):
            got = result.values[version][metric]
            values = np.array([m[metric] for m in per[version]])
            finite = values[np.isfinite(values)]
            assert got.used == len(finite)
            assert same(got.estimate, oracle_metrics(y, scores, np.ones(n, dtype=np.int64))[metric])
            if len(finite):
                low, high = np.percentile(finite, [2.5, 97.5])
                assert same(got.low, float(low)) and same(got.high, float(high))
        diff = np.array([m2[metric] - m1[metric] for m1, m2 in zip(per[1], per[2], strict=True)])
        finite = diff[np.isfinite(diff)]
        delta = result.deltas[2][metric]
        assert delta.used == len(finite)
        if len(finite):
            low, high = np.percentile(finite, [2.5, 97.5])
            assert same(delta.low, float(low)) and same(delta.high, float(high))
    assert set(result.deltas) == {2}


def test_identical_versions_have_a_zero_width_delta_and_bad_input_is_refused() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    s = np.linspace(0.1, 0.9, 8)
    result = bootstrap_intervals(labels=y, scores={3: s, 4: s.copy()}, baseline=3, resamples=30)
    assert all(result.deltas[4][m].low == result.deltas[4][m].high == 0.0 for m in HEADLINE_METRICS)
    with pytest.raises(ValueError, match="baseline version 9"):
        bootstrap_intervals(labels=y, scores={3: s}, baseline=9)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_intervals(labels=y, scores={3: s}, baseline=3, metrics=("log_loss",))
