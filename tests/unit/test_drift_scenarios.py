"""detect_drift on the generator's injected drift (docs/synthetic-data.md is the contract)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from churnops.contracts.columns import EVENT_TS
from monitoring.drift import detect_drift
from monitoring.policy import load_policy
from tests.support import oracle
from tests.support.drift_data import TRAIN_END, detected, generated, scenario

pytestmark = pytest.mark.slow
PROFILE = ("gender", "senior_citizen", "partner", "dependents")


def _flagged(kind: str) -> set[str]:
    return {f.feature for f in detected(kind).features if f.drifted}


def test_the_json_document_has_exactly_the_contract_keys() -> None:
    doc = detected("data").to_json()
    assert {
        "status",
        "model",
        "reference",
        "current",
        "data_drift",
        "prediction_drift",
        "concept_drift",
        "report_html",
    } <= set(doc)
    assert doc["model"] == {"name": "churn", "version": "1"}
    assert doc["reference"]["rows"] == 100_000
    assert set(doc["current"]) == {"start", "end", "rows", "sampled_rows"}
    assert set(doc["data_drift"]) == {"method", "drifted_share", "features"}
    assert doc["data_drift"]["method"] == "kl_div"
    assert len(doc["data_drift"]["features"]) == 19
    assert all(set(f) == {"feature", "score", "threshold", "drifted"} for f in doc["data_drift"]["features"])
    assert set(doc["prediction_drift"]) == {"method", "score", "threshold", "drifted"}
    assert doc["prediction_drift"]["method"] == "jensenshannon"
    assert set(doc["concept_drift"]) == {
        "method",
        "status",
        "statistic",
        "p_value",
        "threshold",
        "drifted",
        "labelled_rows",
    }
    assert doc["concept_drift"]["method"] == "ks"
    assert doc["data_drift"]["drifted_share"] == pytest.approx(1 / 19)
    assert detected("data").json_text()


def test_the_price_rise_flags_monthly_charges_only_and_not_concept_drift() -> None:
    result = detected("data")
    assert result.status == "drift"
    assert "monthly_charges" in _flagged("data")
    assert not _flagged("data") & set(PROFILE)
    scores = {f.feature: f.score for f in result.features}
    assert scores["monthly_charges"] is not None and scores["monthly_charges"] > 0.4  # measured 0.45-0.49
    assert result.concept.status == "no_drift" and not result.concept.drifted
    # The report says how far the scores moved (up: the model reads monthly charges).
    doc = result.to_json()
    assert doc["score_shift"]["mean_shift"] > 0.002
    assert doc["score_shift"]["current_mean"] == pytest.approx(scenario("data").current["score"].mean())


def test_the_joiner_mix_is_reported_but_slow_in_the_whole_population() -> None:
    scores = {f.feature: f for f in detected("data").features}
    for name in ("internet_service", "payment_method"):
        score = scores[name].score
        assert score is not None and score < 0.01  # measured 0.004 / 0.0007
        assert not scores[name].drifted


def test_concept_drift_is_flagged_and_the_profile_columns_are_not() -> None:
    result = detected("concept")
    assert result.concept.status == "drift" and result.concept.drifted
    assert result.concept.statistic is not None and result.concept.statistic >= 0.012
    assert result.concept.p_value is not None and result.concept.p_value < 1e-4
    assert not _flagged("concept") & set(PROFILE)
    assert "monthly_charges" not in _flagged("concept")
    assert result.status == "drift"
    assert result.performance.rows == result.concept.labelled_rows > 50_000
    # the matured churn rate exceeds what the model predicts: the hazard rose
    assert result.performance.positive_rate is not None and result.performance.mean_score is not None
    assert result.performance.positive_rate > result.performance.mean_score


def test_no_drift_is_no_drift_despite_ageing() -> None:
    result = detected("clean")
    assert result.status == "no_drift", _flagged("clean")
    assert result.concept.status == "no_drift"
    tenure = next(f for f in result.features if f.feature == "tenure")
    assert tenure.score is not None and 0.05 < tenure.score < tenure.threshold  # ageing, below its allowance


def test_below_the_minimum_sizes_the_status_is_insufficient_data() -> None:
    s = scenario("clean")
    policy = load_policy()
    tiny = s.current.head(policy.min_current_rows - 1)
    result = detect_drift(
        reference=s.reference,
        current=tiny,
        holdout=s.holdout,
        labelled=tiny,
        policy=policy,
        model_name="churn",
        model_version=1,
        window_start=s.window_start,
        window_end=s.window_end,
    )
    assert result.status == "insufficient_data"
    assert all(f.score is None and not f.drifted for f in result.features)
    assert result.prediction.score is None
    assert result.concept.status == "insufficient_data"
    assert result.snapshot is None
    doc = result.to_json()
    assert doc["status"] == "insufficient_data" and doc["current"]["rows"] == policy.min_current_rows - 1
    # enough current rows but labels not matured yet: data drift judged, concept insufficient
    enough = s.current.head(5000)
    partial = detect_drift(
        reference=s.reference,
        current=enough,
        holdout=s.holdout,
        labelled=enough.head(500),
        policy=load_policy().model_copy(update={"reference_rows": 20_000}),
        model_name="churn",
        model_version=1,
        window_start=s.window_start,
        window_end=s.window_end,
    )
    assert partial.status != "insufficient_data"
    assert partial.concept.status == "insufficient_data" and partial.concept.labelled_rows == 500


def test_the_joiners_own_rows_show_the_joiner_shift_at_once() -> None:
    """The recipe docs/monitoring.md gives: run detect_drift on the new joiners' rows."""
    policy = load_policy().model_copy(update={"reference_rows": 100_000})
    when = datetime(2025, 3, 1, tzinfo=UTC)
    flagged: dict[str, set[str]] = {}
    for kind in ("clean", "data"):
        s = scenario(kind)
        result = detect_drift(
            reference=s.reference[s.reference["tenure"] == 1],
            current=s.current[s.current["tenure"] == 1],
            policy=policy,
            model_name="churn",
            model_version=1,
            window_start=when,
            window_end=s.window_end,
        )
        flagged[kind] = {f.feature for f in result.features if f.drifted}
    assert {"internet_service", "payment_method"} <= flagged["data"]
    assert not flagged["clean"] & {"internet_service", "payment_method"}


def test_over_three_years_ageing_masks_the_joiner_shift_in_the_whole_population() -> None:
    """A longer run (36 months after training): the joiner shift pulls internet_service and
    payment_method *against* the survivor ageing of the clean twin, so the whole population's KL
    stays below the clean twin's and below the thresholds; only the joiners' rows show it."""
    kw = {"customers": 12_000, "months": 48, "seed": 5}
    clean, drifted = generated("clean", **kw), generated("data", **kw)
    reference = clean[clean[EVENT_TS] < TRAIN_END]
    thresholds = load_policy().data_drift
    for month in pd.date_range("2025-06-01", "2027-12-01", freq="6MS", tz="UTC"):
        for name in ("internet_service", "payment_method"):
            kl_clean = oracle.kl_div(
                reference[name], clean.loc[clean[EVENT_TS] == month, name], numeric=False
            )
            kl_drift = oracle.kl_div(
                reference[name], drifted.loc[drifted[EVENT_TS] == month, name], numeric=False
            )
            assert kl_drift < thresholds.threshold(name), (month, name, kl_drift)
            assert kl_drift < kl_clean, (month, name)
    late = drifted[drifted[EVENT_TS] >= pd.Timestamp("2027-01-01", tz="UTC")]
    joiners = late[late["tenure"] == 1]
    ref_joiners = reference[reference["tenure"] == 1]
    assert oracle.kl_div(ref_joiners["payment_method"], joiners["payment_method"], numeric=False) > 0.05
