"""The gate logic is a pure function: every rule can fail, and the policy file is validated."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pydantic import BaseModel

from churnops.contracts.policy_files import ShippedPolicy
from churnops.contracts.stages import Trigger
from churnops.retraining.policy import RetrainPolicy
from churnops.training.errors import GatePolicyError
from churnops.training.gain import GainInterval
from churnops.training.gates import (
    GatePolicy,
    GateReport,
    MetricsSnapshot,
    NonInferiority,
    RelativeRules,
    default_policy_path,
    evaluate_gates,
    load_policy,
)
from monitoring.policy import ConceptDriftRules, DriftPolicy
from tests.support.policies import write_over_shipped

POLICY = GatePolicy.model_validate(
    {
        "name": "test",
        "floors": {"roc_auc": 0.70, "pr_auc_lift": 1.5},
        "ceilings": {"brier": 0.20},
        "relative": {
            "metric": "roc_auc",
            "min_improvement": 0.0,
            "interval_level": 0.95,
            "resamples": 1000,
            "seed": 0,
            "non_inferiority": None,
            "max_slice_regression": {"mtm": 0.02},
        },
        "slices": {"mtm": {"column": "contract", "equals": "Month-to-month"}},
        "min_slice_rows": 50,
    }
)
GOOD = {"roc_auc": 0.85, "pr_auc_lift": 2.5, "brier": 0.13, "pr_auc": 0.6}


def snap(overall: dict[str, float] | None = None, mtm: float | None = 0.78) -> MetricsSnapshot:
    slices = {} if mtm is None else {"mtm": {"roc_auc": mtm}}
    return MetricsSnapshot(overall={**GOOD, **(overall or {})}, slices=slices)


def point_gain(candidate: MetricsSnapshot, production: MetricsSnapshot, width: float = 0.0) -> GainInterval:
    """The gain's interval as if the bootstrap found ``width`` of noise either side of the point."""
    c, p = candidate.overall.get("roc_auc", math.nan), production.overall.get("roc_auc", math.nan)
    gain = c - p
    return GainInterval("roc_auc", gain, gain - width, gain + width, 0.95, 1000, 1000, 0, 500)


def judge(
    *,
    candidate: MetricsSnapshot,
    production: MetricsSnapshot | None,
    policy: GatePolicy = POLICY,
    production_version: int | None = None,
    trigger: str = "manual",
) -> GateReport:
    """``evaluate_gates`` with the gain's interval collapsed to the point (rules other than the gain's)."""
    gain = None if production is None else point_gain(candidate, production)
    return evaluate_gates(
        candidate=candidate,
        production=production,
        policy=policy,
        trigger=trigger,
        gain=gain,
        production_version=production_version,
    )


def result(report, rule: str):  # type: ignore[no-untyped-def]
    matches = [r for r in report.results if r.rule == rule]
    assert len(matches) == 1, [r.rule for r in report.results]
    return matches[0]


def test_a_good_candidate_without_production_passes_and_skips_relative_rules() -> None:
    report = judge(candidate=snap(), production=None, policy=POLICY)
    assert report.passed
    assert report.failures == []
    for rule in ("min_improvement:roc_auc", "max_slice_regression:mtm:roc_auc"):
        r = result(report, rule)
        assert r.passed and r.skipped
    assert report.production_version is None


def test_a_good_candidate_matching_production_passes() -> None:
    report = judge(candidate=snap(), production=snap(), policy=POLICY, production_version=3)
    assert report.passed, report.failures
    r = result(report, "min_improvement:roc_auc")
    assert r.value == 0.0 and not r.skipped
    assert report.production_version == 3


@pytest.mark.parametrize(
    ("overall", "rule"),
    [
        ({"roc_auc": 0.69}, "floor:roc_auc"),
        ({"pr_auc_lift": 1.2}, "floor:pr_auc_lift"),
        ({"brier": 0.2001}, "ceiling:brier"),
    ],
)
def test_each_absolute_rule_can_fail(overall: dict[str, float], rule: str) -> None:
    report = judge(candidate=snap(overall), production=None, policy=POLICY)
    assert not report.passed
    assert [r.rule for r in report.failures] == [rule]
    assert "fails" in result(report, rule).detail


def test_bounds_are_inclusive() -> None:
    report = judge(candidate=snap({"roc_auc": 0.70, "brier": 0.20}), production=None, policy=POLICY)
    assert report.passed


def test_a_missing_metric_fails_its_rule() -> None:
    candidate = MetricsSnapshot(overall={"roc_auc": 0.9, "brier": 0.1}, slices={})
    report = judge(candidate=candidate, production=None, policy=POLICY)
    r = result(report, "floor:pr_auc_lift")
    assert not r.passed and "missing" in r.detail


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_any_non_finite_metric_fails(bad: float) -> None:
    # A NaN on a metric no other rule reads still fails the finite rule.
    report = judge(candidate=snap({"log_loss": bad}), production=None, policy=POLICY)
    assert not report.passed
    assert [r.rule for r in report.failures] == ["finite_metrics"]
    assert "log_loss" in result(report, "finite_metrics").detail


def test_a_non_finite_gated_metric_fails_its_own_rule_too() -> None:
    report = judge(candidate=snap({"roc_auc": math.nan}), production=None, policy=POLICY)
    assert {r.rule for r in report.failures} == {"finite_metrics", "floor:roc_auc"}
    # NaN >= 0.7 is False anyway, but the detail must say why.
    assert "non-finite" in result(report, "floor:roc_auc").detail


def test_a_non_finite_slice_metric_fails() -> None:
    report = judge(candidate=snap(mtm=math.nan), production=None, policy=POLICY)
    assert not result(report, "finite_metrics").passed
    assert "mtm.roc_auc" in result(report, "finite_metrics").detail


def test_a_candidate_worse_than_production_on_the_same_rows_fails() -> None:
    report = judge(candidate=snap({"roc_auc": 0.84}), production=snap({"roc_auc": 0.85}), policy=POLICY)
    assert [r.rule for r in report.failures] == ["min_improvement:roc_auc"]
    r = result(report, "min_improvement:roc_auc")
    assert r.value == pytest.approx(-0.01)
    assert "candidate 0.8400, production 0.8500" in r.detail


def test_min_improvement_requires_a_real_gain_when_positive() -> None:
    policy = POLICY.model_copy(
        update={"relative": POLICY.relative.model_copy(update={"min_improvement": 0.01})}
    )
    same = judge(candidate=snap(), production=snap(), policy=policy)
    assert [r.rule for r in same.failures] == ["min_improvement:roc_auc"]
    better = judge(candidate=snap({"roc_auc": 0.87}), production=snap(), policy=policy)
    assert better.passed


def test_a_slice_regression_beyond_the_limit_fails_even_when_overall_improves() -> None:
    report = judge(
        candidate=snap({"roc_auc": 0.90}, mtm=0.75),
        production=snap({"roc_auc": 0.85}, mtm=0.78),
        policy=POLICY,
    )
    assert [r.rule for r in report.failures] == ["max_slice_regression:mtm:roc_auc"]
    assert result(report, "max_slice_regression:mtm:roc_auc").value == pytest.approx(0.03)


def test_a_slice_regression_within_the_limit_passes() -> None:
    report = judge(candidate=snap(mtm=0.765), production=snap(mtm=0.78), policy=POLICY)
    assert report.passed


@pytest.mark.parametrize(("cand", "prod", "who"), [(None, 0.78, "candidate"), (0.78, None, "production")])
def test_a_slice_without_metrics_fails_its_rule(cand: float | None, prod: float | None, who: str) -> None:
    report = judge(candidate=snap(mtm=cand), production=snap(mtm=prod), policy=POLICY)
    r = result(report, "max_slice_regression:mtm:roc_auc")
    assert not r.passed and who in r.detail


def test_a_non_finite_production_metric_fails_the_comparison() -> None:
    report = judge(candidate=snap(), production=snap({"roc_auc": math.nan}), policy=POLICY)
    assert not result(report, "min_improvement:roc_auc").passed


def test_the_report_is_json_without_nan() -> None:
    report = judge(candidate=snap({"roc_auc": math.nan}), production=snap(), policy=POLICY)
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["passed"] is False
    assert doc["policy"] == "test" and len(doc["policy_digest"]) == 16
    floor = next(r for r in doc["results"] if r["rule"] == "floor:roc_auc")
    assert floor["value"] is None and floor["threshold"] == 0.70 and floor["comparator"] == ">="


def test_the_packaged_default_policy_is_valid_and_sensible() -> None:
    policy = load_policy()
    assert default_policy_path().is_file()
    assert policy.floors["roc_auc"] == 0.70
    assert policy.ceilings["brier"] <= 0.25
    assert policy.relative.max_slice_regression == {"month_to_month": 0.02}
    assert policy.slices["month_to_month"].equals == "Month-to-month"
    # noise-aware by default: superiority on the interval's lower bound, no non-inferiority
    assert policy.relative.min_improvement == 0.001
    assert policy.relative.non_inferiority is None


@pytest.mark.parametrize("model", [GatePolicy, RelativeRules, DriftPolicy, ConceptDriftRules, RetrainPolicy])
def test_the_policy_models_have_no_second_default(model: type[BaseModel]) -> None:
    """The shipped YAML files are the one home of the defaults: every model field is required
    (``name`` included: the reader fills it from the file name)."""
    optional = [name for name, info in model.model_fields.items() if not info.is_required()]
    assert optional == []


def test_the_digest_names_the_interval_settings() -> None:
    base = load_policy()
    assert base.digest() == load_policy().digest()
    for change in (
        {"interval_level": 0.9},
        {"resamples": 2000},
        {"seed": 1},
        {"non_inferiority": NonInferiority(margin=0.005, triggers=(Trigger.SCHEDULED,))},
    ):
        other = base.model_copy(update={"relative": base.relative.model_copy(update=change)})
        assert other.digest() != base.digest(), change


def gain(estimate: float, low: float, high: float, level: float = 0.95) -> GainInterval:
    return GainInterval("roc_auc", estimate, low, high, level, 1000, 1000, 0, 2345)


def test_a_gain_within_the_noise_is_refused_with_its_interval_in_text_and_json() -> None:
    policy = POLICY.model_copy(
        update={"relative": POLICY.relative.model_copy(update={"min_improvement": 0.001})}
    )
    report = evaluate_gates(
        candidate=snap({"roc_auc": 0.8122}),
        production=snap({"roc_auc": 0.81}),
        policy=policy,
        trigger="manual",
        gain=gain(0.0022, -0.0041, 0.0087),
        production_version=4,
    )
    assert [r.rule for r in report.failures] == ["min_improvement:roc_auc"] and report.not_better
    assert report.summary() == (
        "the candidate is not better than Production: roc_auc gain +0.0022 [95% CI -0.0041, +0.0087] "
        "does not clear min_improvement 0.0010"
    )
    r = result(report, "min_improvement:roc_auc")
    assert r.value == -0.0041 and r.threshold == 0.001 and r.comparator == ">="
    assert "candidate 0.8122, production 0.8100; 1,000 paired resamples of 2,345 rows" in r.detail
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["trigger"] == "manual"
    rule = next(x for x in doc["results"] if x["rule"] == "min_improvement:roc_auc")
    assert rule["gain"] == {
        "metric": "roc_auc",
        "estimate": 0.0022,
        "low": -0.0041,
        "high": 0.0087,
        "level": 0.95,
        "resamples": 1000,
        "used": 1000,
        "seed": 0,
        "rows": 2345,
    }
    assert rule["verdict"] in report.summary()


def test_the_lower_bound_decides_inclusively() -> None:
    policy = POLICY.model_copy(
        update={"relative": POLICY.relative.model_copy(update={"min_improvement": 0.001})}
    )

    def passed(low: float) -> bool:
        report = evaluate_gates(
            candidate=snap(), production=snap(), policy=policy, trigger="drift", gain=gain(0.01, low, 0.02)
        )
        return result(report, "min_improvement:roc_auc").passed

    assert passed(0.001) and passed(0.0011) and not passed(0.000999)


def test_non_inferiority_applies_to_its_triggers_only() -> None:
    rules = POLICY.relative.model_copy(
        update={
            "min_improvement": 0.001,
            "non_inferiority": NonInferiority(margin=0.005, triggers=(Trigger.SCHEDULED,)),
        }
    )
    policy = POLICY.model_copy(update={"relative": rules})
    slightly_worse = gain(-0.001, -0.004, 0.002)
    for trigger, rule, ok in (
        ("scheduled", "non_inferiority:roc_auc", True),
        ("manual", "min_improvement:roc_auc", False),
        ("drift", "min_improvement:roc_auc", False),
        ("performance", "min_improvement:roc_auc", False),
    ):
        report = evaluate_gates(
            candidate=snap(), production=snap(), policy=policy, trigger=trigger, gain=slightly_worse
        )
        r = result(report, rule)
        assert r.passed is ok and report.passed is ok, trigger
        assert report.trigger == trigger
    scheduled = evaluate_gates(
        candidate=snap(), production=snap(), policy=policy, trigger="scheduled", gain=slightly_worse
    )
    assert result(scheduled, "non_inferiority:roc_auc").detail.startswith(
        "test roc_auc gain -0.0010 [95% CI -0.0040, +0.0020] clears the non-inferiority margin 0.0050 "
        "(trigger scheduled: lower bound >= -0.0050)"
    )
    too_worse = evaluate_gates(
        candidate=snap(),
        production=snap(),
        policy=policy,
        trigger="scheduled",
        gain=gain(-0.004, -0.006, -0.002),
    )
    assert too_worse.not_better and too_worse.summary() == (
        "the candidate may be worse than Production by more than the margin: roc_auc gain -0.0040 "
        "[95% CI -0.0060, -0.0020] "
        "does not clear the non-inferiority margin 0.0050 (trigger scheduled: lower bound < -0.0050)"
    )
    # and the trigger is checked
    with pytest.raises(ValueError, match="invalid trigger 'nightly'"):
        evaluate_gates(
            candidate=snap(), production=snap(), policy=policy, trigger="nightly", gain=slightly_worse
        )


def test_a_production_version_without_the_gains_interval_fails_the_rule() -> None:
    report = evaluate_gates(candidate=snap(), production=snap(), policy=POLICY, trigger="manual")
    r = result(report, "min_improvement:roc_auc")
    assert not r.passed and "interval of the gain is missing" in r.detail
    assert report.not_better is True  # still only the gain rule


def test_a_gain_without_any_usable_resample_fails() -> None:
    nan = GainInterval("roc_auc", math.nan, math.nan, math.nan, 0.95, 1000, 0, 0, 12)
    report = evaluate_gates(candidate=snap(), production=snap(), policy=POLICY, trigger="manual", gain=nan)
    r = result(report, "min_improvement:roc_auc")
    assert not r.passed and "non-finite" in r.detail
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert next(x for x in doc["results"] if x["gain"])["gain"]["low"] is None


def test_an_interval_computed_with_other_settings_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"90%.*95%"):
        evaluate_gates(
            candidate=snap(),
            production=snap(),
            policy=POLICY,
            trigger="manual",
            gain=gain(0, 0, 0, level=0.9),
        )


def test_a_policy_file_overrides_the_default(tmp_path: Path) -> None:
    path = tmp_path / "strict.yaml"
    write_over_shipped(path, ShippedPolicy.GATES, "floors: {roc_auc: 0.99}\n")
    policy = load_policy(path)
    assert policy.name == "strict"
    assert policy.floors == {"roc_auc": 0.99}  # a named map replaces the shipped one
    report = judge(candidate=snap(), production=None, policy=policy)
    assert [r.rule for r in report.failures] == ["floor:roc_auc"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("floors: {roc_acu: 0.7}\n", "unknown metric"),
        ("relative: {max_slice_regression: {nowhere: 0.1}}\n", "undefined slice"),
        ("floors: {roc_auc: .nan}\n", "finite"),
        ("flors: {roc_auc: 0.7}\n", "flors"),
        ("floors: [1, 2\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping"),
        ("floors: {roc_auc: high}\n", "floors.roc_auc"),
        ("relative: {metric: log_loss}\n", "relative.metric: 'log_loss' has no paired bootstrap"),
        ("relative: {min_improvement: .inf}\n", "relative.min_improvement"),
        ("relative: {interval_level: 1.5}\n", "relative.interval_level: Input should be less than 1"),
        ("relative: {interval_level: 0}\n", "relative.interval_level: Input should be greater than 0"),
        ("relative: {resamples: 10}\n", "relative.resamples: Input should be greater than or equal to 100"),
        ("relative: {seed: -1}\n", "relative.seed"),
        (
            "relative: {non_inferiority: {margin: 0.005, triggers: [schedule]}}\n",
            "relative.non_inferiority.triggers.0",
        ),
        ("relative: {non_inferiority: {margin: 0.005, triggers: []}}\n", "relative.non_inferiority.triggers"),
        (
            "relative: {non_inferiority: {margin: -0.01, triggers: [scheduled]}}\n",
            "relative.non_inferiority.margin",
        ),
        (
            "relative: {non_inferiority: {margin: .nan, triggers: [scheduled]}}\n",
            "relative.non_inferiority.margin",
        ),
        (
            "relative: {non_inferiority: {triggers: [scheduled]}}\n",
            "relative.non_inferiority.margin: Field required",
        ),
        (
            "relative: {non_inferiority: {margin: 0.01, trigger: [drift]}}\n",
            "relative.non_inferiority.trigger",
        ),
    ],
)
def test_an_invalid_policy_is_refused_naming_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    write_over_shipped(path, ShippedPolicy.GATES, text)
    with pytest.raises(GatePolicyError, match=r"bad\.yaml") as info:
        load_policy(path)
    assert needle in str(info.value)


def test_a_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GatePolicyError, match=r"nope\.yaml: cannot be read"):
        load_policy(tmp_path / "nope.yaml")


def test_a_candidate_equal_to_production_reads_as_not_better_not_as_a_true_inequality() -> None:
    policy = POLICY.model_copy(
        update={"relative": POLICY.relative.model_copy(update={"min_improvement": 0.001})}
    )
    # the same model retrained on the same data: the improvement is zero, up to float noise
    same = judge(candidate=snap({"roc_auc": 0.85 - 1e-17}), production=snap({"roc_auc": 0.85}), policy=policy)
    assert same.not_better and not same.passed
    assert same.summary() == (
        "the candidate is not better than Production: roc_auc gain +0.0000 [95% CI +0.0000, +0.0000] "
        "does not clear min_improvement 0.0010"
    )
    detail = result(same, "min_improvement:roc_auc").detail
    assert "does not clear min_improvement 0.0010" in detail and ">=" not in detail
    floor = judge(candidate=snap({"roc_auc": 0.69}), production=None, policy=POLICY)
    assert not floor.not_better and floor.summary() == "gate(s) failed: floor:roc_auc"
    assert "0.6900 < 0.7000 required" in result(floor, "floor:roc_auc").detail
    # numbers that differ below the 4th decimal are shown with enough decimals to differ
    close = judge(candidate=snap({"roc_auc": 0.85095}), production=snap({"roc_auc": 0.85}), policy=policy)
    assert close.summary() == (
        "the candidate is not better than Production: roc_auc gain +0.00095 "
        "[95% CI +0.00095, +0.00095] does not clear min_improvement 0.00100"
    )
