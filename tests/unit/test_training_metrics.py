"""Metrics against scikit-learn and brute force; non-finite results are errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, log_loss, roc_auc_score

from churnops.training.errors import MetricError
from churnops.training.metrics import (
    SliceSpec,
    choose_threshold,
    compute_metrics,
    evaluate_split,
    top_decile_lift,
)


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.25).astype(np.int64)
    s = np.clip(0.25 + 0.3 * (y - 0.25) + rng.normal(0, 0.2, 400), 0.001, 0.999)
    return y, s


def brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_metrics_match_sklearn_and_brute_force(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scored
    m = compute_metrics(y, s, threshold=0.4)
    assert m["roc_auc"] == pytest.approx(brute_auc(y, s), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, s))
    assert m["brier"] == pytest.approx(np.mean((s - y) ** 2))
    assert m["brier"] == pytest.approx(brier_score_loss(y, s))
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))
    assert m["log_loss"] == pytest.approx(log_loss(y, s))
    predicted = s >= 0.4
    assert m["recall_at_threshold"] == pytest.approx((predicted & (y == 1)).sum() / y.sum())
    assert m["precision_at_threshold"] == pytest.approx((predicted & (y == 1)).sum() / predicted.sum())
    assert m["base_rate"] == pytest.approx(y.mean())
    assert m["pr_auc_lift"] == pytest.approx(m["pr_auc"] / y.mean())
    assert all(math.isfinite(v) for v in m.values())


def test_top_decile_lift_brute_force(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scored
    top = sorted(range(len(y)), key=lambda i: -s[i])[:40]  # ceil(400 / 10)
    expected = np.mean([y[i] for i in top]) / y.mean()
    assert top_decile_lift(y, s) == pytest.approx(expected)
    # A perfect ranker with 10% positives has lift 10; a constant score keeps row order.
    y2 = np.array([1] * 10 + [0] * 90)
    assert top_decile_lift(y2, np.linspace(1, 0, 100)) == pytest.approx(10.0)
    assert top_decile_lift(y2[::-1], np.full(100, 0.5)) == pytest.approx(0.0)
    # 11 rows -> the top ceil(1.1) = 2 rows.
    assert top_decile_lift(np.array([1, 0] + [0] * 8 + [1]), np.linspace(1, 0, 11)) == pytest.approx(
        0.5 / (2 / 11)
    )


def test_the_threshold_maximises_f1_on_validation(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scored
    t = choose_threshold(y, s)
    best = max(f1_score(y, s >= c) for c in np.unique(s))
    assert f1_score(y, s >= t) == pytest.approx(best)
    assert t in set(s.tolist())


def test_threshold_ties_go_to_the_higher_threshold() -> None:
    y = np.array([1, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    # >= 0.9: P=1, R=.5 -> F1 2/3; >= 0.1: P=.5, R=1 -> F1 2/3 too; the others are lower.
    assert f1_score(y, s >= 0.9) == pytest.approx(f1_score(y, s >= 0.1))
    assert choose_threshold(y, s) == pytest.approx(0.9)
    y = np.array([1, 0, 1, 0])
    s = np.array([0.8, 0.6, 0.4, 0.2])  # >= 0.8: F1 .667; >= 0.4: P=.667, R=1, F1 .8
    assert choose_threshold(y, s) == pytest.approx(0.4)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_scores_are_an_error(bad: float) -> None:
    y = np.array([0, 1, 0, 1])
    with pytest.raises(MetricError, match="NaN or infinite"):
        compute_metrics(y, np.array([0.1, bad, 0.3, 0.4]), threshold=0.5)


def test_a_single_class_is_an_error_not_a_nan() -> None:
    with pytest.raises(MetricError, match="no positives"):
        compute_metrics(np.zeros(10, dtype=int), np.linspace(0, 1, 10), threshold=0.5)
    with pytest.raises(MetricError, match="no negatives"):
        compute_metrics(np.ones(10, dtype=int), np.linspace(0, 1, 10), threshold=0.5)
    with pytest.raises(MetricError, match="no positives"):
        choose_threshold(np.zeros(10, dtype=int), np.linspace(0, 1, 10))


def test_slices_get_metrics_when_big_enough_and_two_classed(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scored
    contract = np.where(np.arange(400) % 4 == 0, "One year", "Month-to-month").astype(object)
    contract[:3] = None
    frame = pd.DataFrame({"contract": contract, "internet_service": ["DSL"] * 395 + ["Fiber optic"] * 5})
    specs = [
        SliceSpec("mtm", "contract", "Month-to-month"),
        SliceSpec("fiber", "internet_service", "Fiber optic"),
        SliceSpec("none", "internet_service", "No"),
    ]
    result = evaluate_split(frame=frame, y_true=y, scores=s, threshold=0.4, slices=specs, min_slice_rows=30)
    mask = frame["contract"].eq("Month-to-month").to_numpy()
    assert result.slices["mtm"]["roc_auc"] == pytest.approx(roc_auc_score(y[mask], s[mask]))
    assert result.slice_notes == {"fiber": "5 rows < 30", "none": "0 rows < 30"}
    flat = result.flat("test")
    assert flat["test_rows"] == 400.0
    assert flat["test_slice_mtm_roc_auc"] == result.slices["mtm"]["roc_auc"]
    assert flat["test_roc_auc"] == result.overall["roc_auc"]


def test_a_slice_of_one_class_gets_a_note() -> None:
    y = np.array([0, 1] * 50)
    frame = pd.DataFrame({"contract": ["A", "B"] * 50})
    result = evaluate_split(
        frame=frame,
        y_true=y,
        scores=np.linspace(0, 1, 100),
        threshold=0.5,
        slices=[SliceSpec("a", "contract", "A")],
        min_slice_rows=10,
    )
    assert result.slice_notes == {"a": "50 rows, all negative"}


def test_a_slice_on_an_unknown_column_is_an_error() -> None:
    with pytest.raises(MetricError, match="column 'plan'"):
        evaluate_split(
            frame=pd.DataFrame({"x": [1, 2]}),
            y_true=[0, 1],
            scores=[0.2, 0.8],
            threshold=0.5,
            slices=[SliceSpec("p", "plan", "gold")],
        )
