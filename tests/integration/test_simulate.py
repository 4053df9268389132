"""`churnops simulate`: the policy backtest through the real loop (generated history, Feast,
MLflow SQLite, registry_ext, prediction log, Evidently drift reports, the retraining policy).

One CLI run with a price rise and a concept change injected from 2024-08 serves the contract,
timing and recovery checks; one library run under a drift that persists serves storm control
and gate refusals. Both are deterministic (seeded data, seeded training)."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.policy_files import ShippedPolicy
from tests.support.browser import measure_layout
from tests.support.policies import write_over_shipped

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRIFT_FROM = "2024-08"
DRIFT_ONLY = """
name: drift-only
schedule: null
performance: {enabled: false}
drift: {max_drifted_share: 0.05, max_prediction_js: 0.10, concept: true, consecutive_windows: 1}
cooldown_hours: 24
max_retrains: 4
period_days: 90
window_days: 120
"""


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("simulate")
    policy = root / "drift_only.yaml"
    write_over_shipped(policy, ShippedPolicy.RETRAIN, DRIFT_ONLY)
    env = {"CHURNOPS_HOME": str(root / "home"), "CHURNOPS_MLFLOW_TRACKING_URI": "http://127.0.0.1:9/never"}
    args = [
        "simulate", "--months", "6", "--warmup-months", "5", "--customers", "3000", "--seed", "42",
        "--start", "2024-01-01", "--data-drift-from", f"{DRIFT_FROM}-01",
        "--concept-drift-from", f"{DRIFT_FROM}-01", "--policy", str(policy),
        "--out", str(root / "out"), "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return doc


def _policy(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in doc["policies"] if p["name"] == name)


def test_the_json_contract(backtest: dict[str, Any]) -> None:
    assert [p["name"] for p in backtest["policies"]] == ["never", "monthly", "policy"]
    for run in backtest["policies"]:
        assert {"name", "retrains", "promotions", "months"} <= set(run)
        assert [m["month"] for m in run["months"]] == [f"2024-{n:02d}" for n in range(6, 12)]
        for month in run["months"]:
            assert {"month", "roc_auc", "version", "retrained", "trigger"} <= set(month)
            assert 0.5 < month["roc_auc"] < 1.0
        assert run["retrains"] == sum(m["retrained"] for m in run["months"])
        assert run["promotions"] == sum(m["promoted"] for m in run["months"])
    assert _policy(backtest, "never")["retrains"] == 0
    # the schedule fires every month but the first (the first model was trained that month)
    assert [m["retrained"] for m in _policy(backtest, "monthly")["months"]] == [False] + [True] * 5
    # the embedded homes were used, not the (unreachable) tracking server of the environment
    assert backtest["spec"]["customers"] == 3000


def test_a_drift_retrain_happens_after_the_injection_and_not_before(backtest: dict[str, Any]) -> None:
    months = _policy(backtest, "policy")["months"]
    before = [m for m in months if m["month"] < DRIFT_FROM]
    assert before and not any(m["retrained"] for m in before)
    assert all(m["drift_status"] == "no_drift" for m in before)
    first = next(m for m in months if m["retrained"])
    assert first["month"] >= DRIFT_FROM and first["trigger"] == "drift"


def test_the_retrained_model_recovers_auc_versus_never_retraining(backtest: dict[str, Any]) -> None:
    policy, never = _policy(backtest, "policy")["months"], _policy(backtest, "never")["months"]
    served = [i for i in range(1, len(policy)) if policy[i]["version"] != policy[i - 1]["version"]]
    assert served, "the policy never promoted a retrained version"
    after = range(served[0], len(policy))
    gain = sum(policy[i]["roc_auc"] - never[i]["roc_auc"] for i in after) / len(after)
    assert gain > 0.01, gain  # on the new regime, the retrained model is better month for month
    assert all(policy[i]["month"] > DRIFT_FROM for i in after)


def test_the_picture_and_the_timeline(backtest: dict[str, Any]) -> None:
    png, page = Path(backtest["artifacts"]["png"]), Path(backtest["artifacts"]["html"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text(encoding="utf-8")
    assert "drift-only" in text and "never" in text and "monthly" in text
    measured = measure_layout(page, width=1400)
    assert measured["scroll_width"] <= measured["viewport"], measured  # no horizontal scroll at 1,400 px
    assert not measured["wide"], measured
    images = measured["images"]
    assert images and all(int(w) > 500 for w in images), measured  # the plot is there


STORM = """
name: storm
schedule: null
performance: {enabled: false}
drift: {max_drifted_share: 0.05, max_prediction_js: 0.10, concept: false, consecutive_windows: 2}
cooldown_hours: 960
max_retrains: 2
period_days: 100
window_days: 120
"""
REFUSE_ALL = """
name: refuse-all-retrains
floors: {roc_auc: 0.6}
ceilings: {}
slices: {}
relative: {metric: roc_auc, min_improvement: 0.5, max_slice_regression: {}}
"""


def test_storm_control_holds_under_a_drift_that_persists_and_refused_retrains_change_nothing(
    tmp_path: Path,
) -> None:
    from churnops.retraining import parse_policy
    from churnops.retraining.policy import RetrainPolicy
    from churnops.simulation.backtest import CHECK_DELAY, SimulationSpec, simulate
    from churnops.training import load_policy as load_gates

    write_over_shipped(tmp_path / "gates.yaml", ShippedPolicy.GATES, REFUSE_ALL)
    load_gates(tmp_path / "gates.yaml")  # a valid gate policy: the first model has no champion to beat
    import yaml

    policy: RetrainPolicy = parse_policy(yaml.safe_load(STORM))
    sim = simulate(
        spec=SimulationSpec(
            months=5, customers=2500, seed=7, start=date(2024, 1, 1), warmup_months=4,
            data_drift_from=date(2024, 6, 1),
        ),
        policies=[("policy", policy)],
        workdir=tmp_path / "work",
        gate_policy=tmp_path / "gates.yaml",
    )  # fmt: skip
    run = sim.policy("policy")
    months = run.months
    # replayed 2024-05 .. 2024-09; the drift persists from 2024-06: every later window is drifted
    # (k = 2 holds 06, 07 fires, the 40-day cooldown holds 08, 09 fires: measured, 2 of 4 held)
    assert [m.drift_status for m in months] == ["no_drift"] + ["drift"] * 4
    # k = 2: nothing fires on the first drifted window
    assert not months[1].retrained
    checked = [datetime.fromisoformat(f"{m.month}-01T00:00:00+00:00") + CHECK_DELAY for m in months]
    fired = [run.initial_time] + [t for t, m in zip(checked, months, strict=True) if m.retrained]
    # cooldown (40 days) and cap (2 in any 100 days, the first model's forced run included), brute force
    for a, b in itertools.pairwise(fired):
        assert b - a >= timedelta(hours=policy.cooldown_hours)
    for t in fired:
        assert sum(1 for u in fired if t - timedelta(days=policy.period_days) < u <= t) <= policy.max_retrains
    assert run.retrains >= 1  # the storm is there, and held
    suppressed = [m.note for m in months[2:] if m.drift_status == "drift" and not m.retrained]
    assert suppressed and all("suppressed by" in n for n in suppressed)
    # every retrain was refused by the gates: Production never moved, and each says so
    assert run.promotions == 0 and {m.version for m in months} == {run.initial_version}
    for m in months:
        if m.retrained:
            assert m.registered is None and "Production unchanged" in m.note
            assert "min_improvement" in m.note or "not better than Production" in m.note
