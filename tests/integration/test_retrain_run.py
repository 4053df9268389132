"""run_retrain end to end on concept-drifted generated data (real Feast repo, MLflow SQLite
store, registry_ext): the challenger learns the recent window, the champion is scored on the
challenger's newest test rows, and provenance lands on the version and its audit rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnops.contracts.artifacts import HOLDOUT_ARTIFACT
from churnops.contracts.columns import EVENT_TS, LABEL, feature_names
from churnops.contracts.decisions import DecisionState
from churnops.contracts.mlflow_keys import (
    DRIFT_REPORT_TAG,
    TRAINING_LABELS_END_TAG,
    TRAINING_LABELS_START_TAG,
)
from churnops.contracts.monitoring_runs import TAG_DRIFT_WINDOW_END
from churnops.contracts.policy_files import ShippedPolicy, shipped_with
from churnops.contracts.stages import Stage, Trigger
from churnops.retraining import load_policy, parse_policy
from churnops.retraining.orders import order_from_decisions
from churnops.retraining.run import RetrainResult, TrainingWindow, run_retrain
from churnops.training import load_policy as load_gate_policy
from churnops.training.gates import GatePolicy
from registry_ext.decisions import append_decision, get_decision
from tests.support.retrain_env import RetrainEnv, make_retrain_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RetrainEnv]:
    built = make_retrain_env(tmp_path / "home")
    yield built
    built.close()


def _retrain(env: RetrainEnv, *, gates: GatePolicy, promote_to: str = "Production") -> RetrainResult:
    fired = append_decision(
        env.registry.engine,
        name=env.settings.model_name,
        time=env.now,
        fired=True,
        trigger=Trigger.DRIFT,
        suppressed_by=None,
        model_version=str(env.old_version),
        report="runs:/monitoring-run/drift",
        policy="test@0",
        actor="tester",
        reasons=[],
    )
    return run_retrain(
        store=env.store,
        registry=env.registry,
        sources_dir=env.settings.sources_dir,
        policy=parse_policy({"promote_to": promote_to}),
        gate_policy=gates,
        order=lambda registry: order_from_decisions(
            registry=registry,
            policy_label="test@0",
            forced=None,
            now=env.now,
            actor="tester",
            decision_id=fired.id,
        ),
        window=TrainingWindow(start=env.drift_from, end=env.now),
        now=env.now,
        actor="tester",
    )


def test_a_retrain_on_the_recent_window_beats_the_old_model_on_the_newest_rows(env: RetrainEnv) -> None:
    result = _retrain(env, gates=load_gate_policy())
    assert result.registered, result.message
    train = result.train
    newest = env.data.last_snapshot
    # the out-of-time test slice is the most recent matured labels, inside the window
    assert train.split_strategy == "time"
    assert train.windows["test"].end == newest
    assert train.windows["train"].start >= env.drift_from
    # the champion was scored on exactly the challenger's test rows: recompute it independently
    holdout = pd.read_parquet(
        env.registry.client.download_artifacts(train.run_id, HOLDOUT_ARTIFACT, str(env.settings.home))
    )
    assert len(holdout) == train.test.rows == train.production_test.rows
    assert holdout[EVENT_TS].min() >= train.windows["test"].start
    old_model = env.registry.load_model(env.old_version)
    x = holdout[list(getattr(old_model, "feature_names_in_", feature_names()))]
    champion_auc = roc_auc_score(holdout[LABEL], old_model.predict_proba(x)[:, 1])
    assert champion_auc == pytest.approx(train.production_test.overall["roc_auc"], abs=1e-9)
    assert train.test.overall["roc_auc"] > champion_auc  # the retrain wins on the newest rows
    # ... clearly: the lower bound of the gain's paired-bootstrap interval clears min_improvement
    gain = next(r for r in train.gates.results if r.rule == "min_improvement:roc_auc").gain
    assert gain is not None and gain.rows == len(holdout)
    assert gain.estimate == pytest.approx(train.test.overall["roc_auc"] - champion_auc, abs=1e-9)
    assert gain.low >= load_gate_policy().relative.min_improvement
    print(
        f"newest rows: challenger ROC-AUC {train.test.overall['roc_auc']:.4f} vs champion {champion_auc:.4f}"
    )

    version = result.version
    record = env.registry.get(version)
    assert record.stage == Stage.PRODUCTION
    assert env.registry.production().version == version
    assert result.production_before == env.old_version and result.production_after == version
    tags = env.registry.client.get_model_version(env.settings.model_name, str(version)).tags
    assert tags["churnops.trigger"] == "drift"
    assert tags["churnops.decision_id"] == str(result.decision_id)
    decision = get_decision(env.registry.engine, decision_id=result.decision_id)
    assert decision is not None and decision.state == DecisionState.PROMOTED
    assert [t.to_state.value for t in decision.transitions] == [
        "claimed",
        "trained",
        "registered",
        "promoted",
    ]
    assert decision.last_detail(DecisionState.PROMOTED) == {"version": version, "stage": "Production"}
    assert tags[DRIFT_REPORT_TAG] == "runs:/monitoring-run/drift"
    assert tags[TRAINING_LABELS_START_TAG] == env.drift_from.isoformat()
    assert tags[TRAINING_LABELS_END_TAG] == env.now.isoformat()
    assert TAG_DRIFT_WINDOW_END not in tags  # a drift report's window name, never a version's
    audit = env.registry.audit(version=version)
    assert [a.to_stage for a in audit] == [Stage.NONE, Stage.STAGING, Stage.PRODUCTION]
    assert {a.trigger for a in audit} == {"drift"}
    archived = env.registry.audit(version=env.old_version)[-1]
    assert archived.to_stage == Stage.ARCHIVED and archived.trigger == "drift"


def test_a_retrain_whose_gates_fail_leaves_production_unchanged(env: RetrainEnv) -> None:
    strict = GatePolicy.model_validate(
        shipped_with(ShippedPolicy.GATES, {"name": "strict", "floors": {"roc_auc": 0.999}}, model=GatePolicy)
    )
    before = [(r.version, r.stage) for r in env.registry.all_versions()]
    result = _retrain(env, gates=strict)
    assert not result.registered
    assert result.version is None
    assert "floor:roc_auc" in result.message and "Production unchanged (version 1)" in result.message
    assert [(r.version, r.stage) for r in env.registry.all_versions()] == before
    assert env.registry.production().version == env.old_version
    run = env.registry.client.get_run(result.train.run_id)
    assert run.data.tags["churnops.gates"] == "failed"
    assert result.state == DecisionState.REFUSED  # finished: counted by the cooldown
    assert run.data.tags["churnops.trigger"] == "drift"


def test_stop_at_staging_keeps_the_champion(env: RetrainEnv) -> None:
    result = _retrain(env, gates=load_gate_policy(), promote_to="Staging")
    assert result.stage == Stage.STAGING, result.message
    assert env.registry.production().version == env.old_version
    assert env.registry.staging().version == result.version
    assert result.state == DecisionState.PROMOTED  # promoted to the policy's stage, Staging


def test_the_default_window_is_the_policy_sliding_window() -> None:
    policy = load_policy()
    end = pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime()
    window = TrainingWindow(start=end - timedelta(days=policy.window_days), end=end)
    assert (window.end - window.start).days == policy.window_days
    with pytest.raises(ValueError, match="must be before"):
        TrainingWindow(start=end, end=end)
