"""Evidently is the source of truth: every score the project reports equals Evidently's own,
and Evidently's kl_div / jensenshannon / ks equal a brute-force numpy/scipy oracle."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnops.contracts.columns import FEATURES
from monitoring.concept import frame_pit
from monitoring.drift import CATEGORICAL, detect_drift, sample_reference
from monitoring.errors import MonitoringError
from monitoring.policy import load_policy
from tests.support import oracle
from tests.support.drift_data import detected, scenario


@pytest.fixture(scope="module")
def stattests() -> Any:
    from evidently.legacy.calculations import stattests
    from evidently.legacy.core import ColumnType

    return stattests, ColumnType


def _evidently(stattests: Any, name: str, ref: pd.Series, cur: pd.Series, numeric: bool) -> float:
    mod, column_type = stattests
    test = {
        "kl_div": mod.kl_div_stat_test,
        "jensenshannon": mod.jensenshannon_stat_test,
        "ks": mod.ks_stat_test,
    }[name]
    # Evidently drops nulls and infinities before calling the test (get_one_column_drift).
    ref, cur = (s.replace([np.inf, -np.inf], np.nan).dropna() if numeric else s.dropna() for s in (ref, cur))
    kind = column_type.Numerical if numeric else column_type.Categorical
    return float(test(ref, cur, kind, None).drift_score)


numbers = st.lists(
    st.one_of(st.floats(-50, 50), st.just(float("nan")), st.integers(0, 3).map(float)),
    min_size=3,
    max_size=120,
)
labels = st.lists(st.sampled_from(["a", "b", "c", "d", "e", None]), min_size=3, max_size=120)


def _has_values(values: list[Any]) -> bool:
    return any(v is not None and v == v for v in values)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(ref=numbers, cur=numbers)
def test_numeric_scores_equal_the_oracle(stattests: Any, ref: list[float], cur: list[float]) -> None:
    if not (_has_values(ref) and _has_values(cur)):
        return
    r, c = pd.Series(ref, dtype="float64"), pd.Series(cur, dtype="float64")
    for name, fn in (("kl_div", oracle.kl_div), ("jensenshannon", oracle.jensenshannon)):
        ours = fn(r.dropna(), c.dropna(), numeric=True)
        theirs = _evidently(stattests, name, r, c, numeric=True)
        assert np.isfinite(theirs)
        assert theirs == pytest.approx(ours, rel=1e-9, abs=1e-12), name
    with warnings.catch_warnings():
        # scipy falls back from the exact to the asymptotic p-value on some tiny tied samples
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        d, p = oracle.ks(r.dropna().to_numpy(), c.dropna().to_numpy())
        assert _evidently(stattests, "ks", r, c, numeric=True) == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert 0 <= d <= 1


@settings(max_examples=40, deadline=None)
@given(ref=labels, cur=labels)
def test_categorical_scores_equal_the_oracle_with_unseen_categories(
    stattests: Any, ref: list[Any], cur: list[Any]
) -> None:
    if not (_has_values(ref) and _has_values(cur)):
        return
    r, c = pd.Series(ref, dtype="object"), pd.Series(cur, dtype="object")
    for name, fn in (("kl_div", oracle.kl_div), ("jensenshannon", oracle.jensenshannon)):
        theirs = _evidently(stattests, name, r, c, numeric=False)
        assert np.isfinite(theirs)  # categories seen on one side only get an epsilon share
        assert theirs == pytest.approx(fn(r.dropna(), c.dropna(), numeric=False), rel=1e-9, abs=1e-12), name


@pytest.mark.slow
def test_every_reported_score_equals_evidentlys_own_and_the_oracle(stattests: Any) -> None:
    s, result = scenario("data"), detected("data")
    policy = load_policy()
    reference = sample_reference(reference=s.reference, rows=policy.reference_rows, seed=policy.seed)
    assert result.reference_rows == len(reference) == 100_000
    for feature in result.features:
        numeric = feature.feature not in CATEGORICAL
        ref, cur = reference[feature.feature], s.current[feature.feature]
        if feature.feature in CATEGORICAL:
            ref, cur = ref.astype("object"), cur.astype("object")
        theirs = _evidently(stattests, "kl_div", ref, cur, numeric)
        assert feature.score == pytest.approx(theirs, rel=1e-9, abs=1e-12), feature.feature
        assert feature.score == pytest.approx(oracle.kl_div(ref, cur, numeric=numeric), rel=1e-9, abs=1e-12)
    js = _evidently(stattests, "jensenshannon", reference["score"], s.current["score"], True)
    assert result.prediction.score == pytest.approx(js, rel=1e-9)
    assert result.prediction.score == pytest.approx(
        oracle.jensenshannon(reference["score"], s.current["score"], numeric=True), rel=1e-9
    )
    u_ref, u_cur = frame_pit(frame=s.holdout), frame_pit(frame=s.current)
    d, p = oracle.ks(u_ref, u_cur)
    assert result.concept.p_value == pytest.approx(
        _evidently(stattests, "ks", pd.Series(u_ref), pd.Series(u_cur), True), rel=1e-9
    )
    assert result.concept.p_value == pytest.approx(p, rel=1e-9)
    assert result.concept.statistic == pytest.approx(d, rel=1e-12)
    # ... and the JSON carries exactly these numbers, as Evidently's snapshot.dict() has them.
    metrics = result.snapshot.dict()["metrics"]
    values = {
        m["config"]["column"]: m["value"] for m in metrics if m["config"]["type"].endswith(":ValueDrift")
    }
    doc = result.to_json()
    # the dashboard's drifted share: Evidently's DriftedColumnsCount with the policy's methods and
    # thresholds counts the same features as the report's own rule
    [counted] = [m["value"] for m in metrics if m["config"]["type"].endswith(":DriftedColumnsCount")]
    assert counted["share"] == pytest.approx(result.drifted_share, abs=1e-12)
    assert {f["feature"]: f["score"] for f in doc["data_drift"]["features"]} == {
        k: v for k, v in values.items() if k != "score"
    }
    assert doc["prediction_drift"]["score"] == values["score"]


def _small(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for col in FEATURES:
        if col.kind == "category":
            data[col.name] = rng.choice(list(col.categories), n)
        elif col.kind == "flag":
            data[col.name] = rng.integers(0, 2, n)
        else:
            data[col.name] = rng.gamma(2.0, 10.0, n) + shift
    data["score"] = rng.beta(1, 9, n)
    return pd.DataFrame(data)


def test_unseen_categories_empty_bins_and_missing_values_stay_finite() -> None:
    rng = np.random.default_rng(0)
    reference, current = _small(rng, 400, 0.0), _small(rng, 300, 200.0)  # numbers far apart: empty bins
    current.loc[:50, "contract"] = "Three year"  # unseen category
    current.loc[:20, "gender"] = None
    current.loc[:10, "tenure"] = np.nan
    current["partner"] = 1  # a single value on one side
    policy = load_policy().model_copy(update={"min_current_rows": 100, "min_reference_rows": 100})
    when = datetime(2025, 1, 1, tzinfo=UTC)
    result = detect_drift(
        reference=reference,
        current=current,
        policy=policy,
        model_name="churn",
        model_version=3,
        window_start=when,
        window_end=when,
    )
    scores = {f.feature: f.score for f in result.features}
    assert all(v is not None and np.isfinite(v) for v in scores.values())
    assert scores["tenure"] is not None and scores["tenure"] > 1  # far apart, finite thanks to the epsilon
    quality = {q.feature: q for q in result.quality}
    assert quality["contract"].unseen_category_share == pytest.approx(51 / 300)
    assert quality["gender"].null_share == pytest.approx(21 / 300)
    assert quality["tenure"].null_share == pytest.approx(11 / 300)
    assert result.concept.status == "insufficient_data"  # no labels given
    doc = result.to_json()
    assert doc["model"] == {"name": "churn", "version": "3"}
    assert result.json_text()  # strict JSON: no NaN anywhere


def test_bad_frames_name_the_column_and_the_fix() -> None:
    rng = np.random.default_rng(1)
    frame = _small(rng, 200, 0.0)
    when = datetime(2025, 1, 1, tzinfo=UTC)
    common: dict[str, Any] = {"policy": load_policy(), "model_name": "churn", "model_version": 1}
    with pytest.raises(MonitoringError, match=r"current: missing column\(s\) \['tenure'\]"):
        detect_drift(
            reference=frame,
            current=frame.drop(columns=["tenure"]),
            window_start=when,
            window_end=when,
            **common,
        )
    holdout = pd.DataFrame({"customer_id": ["a"], "event_timestamp": [when], "churned": [0]})
    with pytest.raises(MonitoringError, match="holdout: no 'score' column"):
        detect_drift(
            reference=frame, current=frame, holdout=holdout, window_start=when, window_end=when, **common
        )
    with pytest.raises(MonitoringError, match="window_end"):
        detect_drift(
            reference=frame,
            current=frame,
            window_start=when,
            window_end=datetime(2024, 1, 1, tzinfo=UTC),
            **common,
        )
