"""Noise-aware promotion: the relative gate judges the paired-bootstrap interval of the gain.

Against a brute-force oracle (every resample materialized, ROC-AUC counted pair by pair), and on
generated data: a challenger that only differs by noise (the same model refit with another seed,
or the same predictions plus noise) is refused with its interval, a clearly better one passes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from churnops.contracts.bootstrap import draw_counts
from churnops.contracts.policy_files import ShippedPolicy, shipped_with
from churnops.training.candidates import fit_candidate, score
from churnops.training.gain import GainInterval, gain_interval
from churnops.training.gates import GatePolicy, GateReport, MetricsSnapshot, evaluate_gates, load_policy
from churnops.training.metrics import evaluate_split
from tests.support.registry import COLUMNS, FEATURES, churn_frame

TRIGGERS = ("manual", "scheduled", "performance", "drift")


def brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney by counting every (positive, negative) pair, ties one half."""
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins / (len(pos) * len(neg)))


def brute_brier(y: np.ndarray, s: np.ndarray) -> float:
    return float(np.mean((s - y) ** 2))


def oracle_low(
    y: np.ndarray, cand: np.ndarray, prod: np.ndarray, *, metric: str, level: float, resamples: int, seed: int
) -> float:
    """The lower bound of the gain's interval: each resample's rows repeated as drawn, scored."""
    gains = []
    for counts in draw_counts(rows=len(y), resamples=resamples, seed=seed):
        index = np.repeat(np.arange(len(y)), counts)
        ry = y[index]
        if metric == "roc_auc":
            gain = brute_auc(ry, cand[index]) - brute_auc(ry, prod[index])
        else:  # brier: lower is better, the gain is production - candidate
            gain = brute_brier(ry, prod[index]) - brute_brier(ry, cand[index])
        if math.isfinite(gain):
            gains.append(gain)
    if not gains:
        return math.nan
    return float(np.percentile(gains, (1 - level) / 2 * 100))


def policy_with(**relative: object) -> GatePolicy:
    base = {"metric": "roc_auc", "min_improvement": 0.0, "resamples": 100, "max_slice_regression": {}}
    data = shipped_with(
        ShippedPolicy.GATES, {"name": "t", "relative": {**base, **relative}}, model=GatePolicy
    )
    data["relative"]["max_slice_regression"] = {}
    return GatePolicy.model_validate({**data, "floors": {}, "ceilings": {}, "slices": {}})


@st.composite
def cases(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(min_value=6, max_value=16))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.int64)
    values = st.sampled_from([0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95])
    cand = np.array(draw(st.lists(values, min_size=n, max_size=n)))
    prod = np.array(draw(st.lists(values, min_size=n, max_size=n)))
    ni = draw(
        st.none()
        | st.tuples(st.sampled_from([0.01, 0.05, 0.2]), st.sets(st.sampled_from(TRIGGERS), min_size=1))
    )
    return {
        "y": y,
        "cand": cand,
        "prod": prod,
        "metric": draw(st.sampled_from(["roc_auc", "brier"])),
        "level": draw(st.sampled_from([0.8, 0.9, 0.95])),
        "seed": draw(st.integers(0, 2**16)),
        "min_improvement": draw(st.sampled_from([-0.1, 0.0, 0.001, 0.05])),
        "ni": ni,
        "trigger": draw(st.sampled_from(TRIGGERS)),
    }


@settings(max_examples=60, deadline=None)
@given(cases())
def test_the_decision_is_the_lower_bound_of_the_materialized_resamples_against_the_rule(
    case: dict[str, object],
) -> None:
    y, cand, prod = case["y"], case["cand"], case["prod"]
    assert isinstance(y, np.ndarray) and isinstance(cand, np.ndarray) and isinstance(prod, np.ndarray)
    metric, level, seed, trigger = (
        str(case["metric"]),
        float(case["level"]),
        int(case["seed"]),
        str(case["trigger"]),
    )  # type: ignore[call-overload]
    ni = case["ni"]
    non_inferiority = None if ni is None else {"margin": ni[0], "triggers": sorted(ni[1])}  # type: ignore[index]
    policy = policy_with(
        metric=metric,
        min_improvement=case["min_improvement"],
        interval_level=level,
        seed=seed,
        non_inferiority=non_inferiority,
    )
    gain = gain_interval(
        labels=y,
        candidate_scores=cand,
        production_scores=prod,
        metric=metric,
        level=level,
        resamples=100,
        seed=seed,
    )
    expected_low = oracle_low(y, cand, prod, metric=metric, level=level, resamples=100, seed=seed)
    in_ni = non_inferiority is not None and trigger in non_inferiority["triggers"]
    required = -float(non_inferiority["margin"]) if in_ni else float(case["min_improvement"])  # type: ignore[index, arg-type]
    # float noise between the two computations must not decide a tie
    assume(math.isnan(expected_low) or abs(expected_low - required) > 1e-9)
    snapshot = MetricsSnapshot(overall={metric: 0.5})
    report = evaluate_gates(
        candidate=snapshot, production=snapshot, policy=policy, trigger=trigger, gain=gain
    )
    rule = next(r for r in report.results if r.rule.endswith(f":{metric}") and r.gain is not None)
    assert rule.rule == (f"non_inferiority:{metric}" if in_ni else f"min_improvement:{metric}")
    if math.isnan(expected_low):
        assert math.isnan(gain.low) and not rule.passed
        return
    assert gain.low == pytest.approx(expected_low, abs=1e-9)
    assert rule.passed == (expected_low >= required)
    assert rule.threshold == pytest.approx(required)
    assert report.not_better == (not rule.passed)


# --- generated data: noise-equal and clearly better challengers -------------------------------

TRAIN = churn_frame(seed=11, rows=3000)
TEST = churn_frame(seed=12, rows=1500)
Y = TEST["churned"].to_numpy()


def fitted_scores(*, family: str, seed: int, features: list[str] = FEATURES) -> np.ndarray:
    columns = [c for c in COLUMNS if c.name in features]
    model = fit_candidate(
        family=family, columns=columns, x=TRAIN[features], y=TRAIN["churned"].to_numpy(), seed=seed
    ).pipeline
    return score(model, TEST[features])


def relative_only(policy: GatePolicy, **relative: object) -> GatePolicy:
    """The packaged relative rules (bootstrap settings, min_improvement) without the absolute ones,
    which these small generated frames are not meant to pass."""
    data = policy.model_dump(mode="json")
    rules = {**data["relative"], "max_slice_regression": {}, **relative}
    return GatePolicy.model_validate({**data, "floors": {}, "ceilings": {}, "relative": rules})


def judge(*, candidate: np.ndarray, production: np.ndarray, policy: GatePolicy, trigger: str) -> GateReport:
    """What training does: both scored on the same test rows, the gain's interval, the gates."""
    rel = policy.relative

    def snapshot(scores: np.ndarray) -> MetricsSnapshot:
        metrics = evaluate_split(frame=TEST, y_true=Y, scores=scores, threshold=0.5)
        return MetricsSnapshot(overall=metrics.overall, slices=metrics.slices)

    gain = gain_interval(
        labels=Y,
        candidate_scores=candidate,
        production_scores=production,
        metric=rel.metric,
        level=rel.interval_level,
        resamples=rel.resamples,
        seed=rel.seed,
    )
    return evaluate_gates(
        candidate=snapshot(candidate),
        production=snapshot(production),
        policy=policy,
        trigger=trigger,
        gain=gain,
        production_version=1,
    )


@pytest.fixture(scope="module")
def champion() -> np.ndarray:
    return fitted_scores(family="hist_gradient_boosting", seed=0)


def test_the_same_model_refit_with_another_seed_is_refused_with_its_interval(champion: np.ndarray) -> None:
    policy = relative_only(load_policy())
    refit = fitted_scores(family="hist_gradient_boosting", seed=1)
    report = judge(candidate=refit, production=champion, policy=policy, trigger="manual")
    (rule,) = report.failures
    gain = rule.gain
    assert gain is not None
    # the point gain clears min_improvement (the old rule promoted this), the interval does not
    assert gain.estimate > policy.relative.min_improvement
    assert gain.low < 0 < gain.high
    assert rule.rule == "min_improvement:roc_auc" and report.not_better
    assert report.summary() == (
        f"the candidate is not better than Production: roc_auc gain {gain.shown()} "
        "does not clear min_improvement 0.0010"
    )
    assert "[95% CI " in report.summary()
    assert gain.rows == len(Y) and gain.used == 1000 and gain.resamples == 1000


def test_the_same_predictions_plus_noise_are_refused(champion: np.ndarray) -> None:
    noisy = np.clip(champion + np.random.default_rng(3).normal(0, 0.01, len(champion)), 0, 1)
    report = judge(candidate=noisy, production=champion, policy=relative_only(load_policy()), trigger="drift")
    assert report.not_better and [r.rule for r in report.failures] == ["min_improvement:roc_auc"]


def test_a_clearly_better_challenger_passes(champion: np.ndarray) -> None:
    weak = fitted_scores(family="logistic_regression", seed=0, features=["monthly_charges"])
    report = judge(candidate=champion, production=weak, policy=relative_only(load_policy()), trigger="manual")
    assert report.passed, report.failures
    rule = next(r for r in report.results if r.rule == "min_improvement:roc_auc")
    assert rule.gain is not None and rule.gain.low > 0.05
    assert rule.verdict is not None and " clears min_improvement 0.0010" in rule.verdict


def test_non_inferiority_lets_a_fresher_noise_equal_model_through_for_its_triggers_only(
    champion: np.ndarray,
) -> None:
    policy = relative_only(load_policy(), non_inferiority={"margin": 0.01, "triggers": ["scheduled"]})
    refit = fitted_scores(family="hist_gradient_boosting", seed=2)  # a little worse by the point
    scheduled = judge(candidate=refit, production=champion, policy=policy, trigger="scheduled")
    assert scheduled.passed, scheduled.failures
    rule = next(r for r in scheduled.results if r.rule == "non_inferiority:roc_auc")
    assert rule.gain is not None and rule.gain.estimate < 0 and rule.gain.low > -0.01
    drift = judge(candidate=refit, production=champion, policy=policy, trigger="drift")
    assert drift.not_better and [r.rule for r in drift.failures] == ["min_improvement:roc_auc"]
    # a model worse by more than the margin is refused even for a scheduled refresh
    weak = fitted_scores(family="logistic_regression", seed=0, features=["monthly_charges"])
    worse = judge(candidate=weak, production=champion, policy=policy, trigger="scheduled")
    assert [r.rule for r in worse.failures] == ["non_inferiority:roc_auc"] and worse.not_better
    assert "does not clear the non-inferiority margin 0.0100" in worse.summary()


def test_the_interval_is_seeded_and_paired(champion: np.ndarray) -> None:
    refit = fitted_scores(family="hist_gradient_boosting", seed=1)
    args = {"labels": Y, "metric": "roc_auc", "level": 0.95, "resamples": 300}
    first = gain_interval(candidate_scores=refit, production_scores=champion, seed=7, **args)  # type: ignore[arg-type]
    again = gain_interval(candidate_scores=refit, production_scores=champion, seed=7, **args)  # type: ignore[arg-type]
    other = gain_interval(candidate_scores=refit, production_scores=champion, seed=8, **args)  # type: ignore[arg-type]
    assert first == again and first != other
    # paired: both are scored on the same resampled rows, so a model against itself gains nothing
    same = gain_interval(candidate_scores=champion, production_scores=champion, seed=7, **args)  # type: ignore[arg-type]
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same rows"):
        gain_interval(candidate_scores=refit[:-1], production_scores=champion, seed=7, **args)  # type: ignore[arg-type]


def test_brier_gains_are_oriented_so_that_positive_is_better(champion: np.ndarray) -> None:
    worse = np.clip(champion * 0.5 + 0.25, 0, 1)  # squeezed towards 0.5: a worse Brier score
    gain = gain_interval(
        labels=Y,
        candidate_scores=champion,
        production_scores=worse,
        metric="brier",
        level=0.9,
        resamples=200,
        seed=0,
    )
    assert gain.estimate > 0 and gain.low > 0 and gain.low <= gain.estimate <= gain.high
    assert isinstance(gain, GainInterval)
