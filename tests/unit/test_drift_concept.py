"""The randomized PIT and the concept-drift decision rule (pure numpy, no Evidently)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitoring.concept import decide_concept, frame_pit, randomized_pit, row_uniforms
from monitoring.errors import MonitoringError
from monitoring.policy import ConceptDriftRules

N = 20_000


def _outcomes(p: np.ndarray, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(len(p)) < p).astype(np.int64)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), a=st.floats(0.3, 5), b=st.floats(0.3, 20))
def test_u_is_uniform_whatever_the_score_distribution_when_the_model_is_right(
    seed: int, a: float, b: float
) -> None:
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, N)
    u = randomized_pit(scores=p, churned=_outcomes(p, seed + 1), uniforms=rng.random(N))
    assert stats.kstest(u, "uniform").pvalue > 1e-4


def test_covariate_shift_leaves_u_alone_but_a_changed_outcome_model_moves_it() -> None:
    rng = np.random.default_rng(7)
    before = rng.beta(1, 15, N)  # mostly low scores
    after = rng.beta(2, 6, N)  # a very different population: data drift only
    u_before = randomized_pit(scores=before, churned=_outcomes(before, 1), uniforms=rng.random(N))
    u_shift = randomized_pit(scores=after, churned=_outcomes(after, 2), uniforms=rng.random(N))
    assert stats.ks_2samp(u_before, u_shift).pvalue > 1e-3
    truth = np.clip(after * 1.6, 0, 1)  # P(churn | x) is no longer what the model says
    u_concept = randomized_pit(scores=after, churned=_outcomes(truth, 3), uniforms=rng.random(N))
    result = stats.ks_2samp(u_before, u_concept)
    assert result.pvalue < 1e-12 and result.statistic > 0.05


def test_v_is_a_pure_function_of_the_row_key() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [f"{i:04d}-ABCDE" for i in range(500)],
            "event_timestamp": pd.date_range("2025-01-01", periods=500, freq="h", tz="UTC"),
        }
    )
    v = row_uniforms(frame=frame)
    shuffled = frame.sample(frac=1.0, random_state=1)
    np.testing.assert_array_equal(row_uniforms(frame=shuffled), v[shuffled.index.to_numpy()])
    assert ((v >= 0) & (v < 1)).all() and len(np.unique(v)) == len(v)
    assert not np.array_equal(row_uniforms(frame=frame, seed=1), v)
    later = frame.assign(event_timestamp=frame["event_timestamp"] + pd.Timedelta(days=31))
    assert not np.isin(row_uniforms(frame=later), v).any()  # the same customer next month: a new V
    assert stats.kstest(row_uniforms(frame=pd.concat([frame] * 1)), "uniform").pvalue > 1e-3


def test_frame_pit_ignores_unmatured_rows_and_names_missing_columns() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "event_timestamp": pd.Timestamp("2025-01-01", tz="UTC"),
            "score": [0.2, 0.5, 0.9],
            "churned": [0, np.nan, 1],
        }
    )
    u = frame_pit(frame=frame)
    assert len(u) == 2 and u[0] < 0.8 and u[1] >= 0.1
    with pytest.raises(MonitoringError, match="customer_id"):
        frame_pit(frame=frame.drop(columns=["customer_id"]))
    with pytest.raises(MonitoringError, match="score"):
        frame_pit(frame=frame.drop(columns=["score"]))


@pytest.mark.parametrize(
    ("scores", "churned", "match"),
    [([0.1, 1.2], [0, 1], "score"), ([0.1, np.nan], [0, 1], "score"), ([0.1, 0.2], [0, 2], "churned")],
)
def test_bad_inputs_name_the_field(scores: list[float], churned: list[int], match: str) -> None:
    with pytest.raises(MonitoringError, match=match):
        randomized_pit(scores=scores, churned=churned, uniforms=[0.5, 0.5])


RULES = ConceptDriftRules(alpha=0.01, min_statistic=0.012, min_labelled_rows=1000, min_holdout_rows=1000)


@pytest.mark.parametrize(
    ("statistic", "p_value", "rows", "status"),
    [
        (0.017, 4e-9, 73_000, "drift"),  # the concept drift
        (0.006, 0.14, 73_000, "no_drift"),  # the data drift only
        (0.010, 0.004, 79_000, "no_drift"),  # significant but below the effect-size floor
        (0.050, 0.02, 1_500, "no_drift"),  # big but not significant
        (0.050, 1e-6, 999, "insufficient_data"),  # too few matured rows: never "no drift"
        (None, None, 5_000, "insufficient_data"),
    ],
)
def test_the_decision_needs_significance_size_and_rows(
    statistic: float | None, p_value: float | None, rows: int, status: str
) -> None:
    decision = decide_concept(
        statistic=statistic, p_value=p_value, labelled_rows=rows, holdout_rows=60_000, rules=RULES
    )
    assert decision.status == status
    assert decision.drifted == (status == "drift")
    few_holdout = decide_concept(
        statistic=0.05, p_value=1e-9, labelled_rows=rows, holdout_rows=10, rules=RULES
    )
    assert few_holdout.status == "insufficient_data"
