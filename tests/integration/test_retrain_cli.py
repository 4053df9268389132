"""`churnops retrain check|run` from the command line, on a real home (Feast, MLflow on SQLite or
PostgreSQL, registry_ext): decisions read the drift reports `monitor drift` logs, are recorded
append-only, a second check never cancels an unacted fire, every refusal exits 3, and two
concurrent `retrain run` processes never both register or promote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.columns import EVENT_TS, feature_names
from churnops.contracts.policy_files import ShippedPolicy
from registry_ext.decisions import list_decisions
from tests.support.policies import write_over_shipped
from tests.support.retrain_env import RetrainEnv, make_retrain_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICY = """
name: test
schedule: null
performance: {enabled: false}
drift: {max_prediction_js: 0.001, max_drifted_share: 1.0, consecutive_windows: 2}
cooldown_hours: 24
promote_to: Production
"""


@pytest.fixture(params=["sqlite"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RetrainEnv]:
    home = tmp_path / "home"
    for var in (
        "CHURNOPS_MLFLOW_TRACKING_URI",
        "CHURNOPS_ARTIFACT_ROOT",
        "CHURNOPS_REDIS_URL",
        "CHURNOPS_FEAST_REGISTRY_URL",
        "CHURNOPS_GATE_POLICY",
        "CHURNOPS_RETRAIN_POLICY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    if request.param == "postgresql":  # MLflow's backend store, and registry_ext's tables, on PostgreSQL
        monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", request.getfixturevalue("postgres_url"))
    monkeypatch.setenv("CHURNOPS_ACTOR", "cli-tester")
    monkeypatch.chdir(tmp_path)
    write_over_shipped(tmp_path / "policy.yaml", ShippedPolicy.RETRAIN, POLICY)
    built = make_retrain_env(home)
    yield built
    built.close()


def _log_drift_reports(env: RetrainEnv, *, windows: int) -> list[str]:
    """Real drift reports of the Production version (Evidently), logged as `monitor drift` does."""
    from monitoring.baseline import load_baselines
    from monitoring.drift import detect_drift
    from monitoring.policy import load_policy
    from monitoring.report import log_to_mlflow

    client, name = env.registry.client, env.settings.model_name
    baselines = load_baselines(client=client, model_name=name, version=str(env.old_version))
    model = env.registry.load_model(env.old_version)
    frame = env.data.frame
    current = frame[frame[EVENT_TS] >= env.drift_from].reset_index(drop=True)
    x = current[list(getattr(model, "feature_names_in_", feature_names()))]
    current["score"] = model.predict_proba(x)[:, 1]
    result = detect_drift(
        reference=baselines.reference,
        current=current,
        holdout=baselines.holdout,
        labelled=current,
        policy=load_policy(),
        model_name=name,
        model_version=str(env.old_version),
        window_start=env.drift_from,
        window_end=env.data.last_snapshot,
    )
    run_ids = []
    for i in range(windows):
        end = env.data.last_snapshot - timedelta(days=30 * (windows - 1 - i))
        run_ids.append(log_to_mlflow(client=client, result=replace(result, window_end=end), html_path=None))
    return run_ids


def test_check_records_decisions_from_logged_reports_append_only(env: RetrainEnv, tmp_path: Path) -> None:
    runner = CliRunner()
    now = env.now.isoformat()
    args = ["retrain", "check", "--json", "--policy", str(tmp_path / "policy.yaml"), "--now", now]

    result = runner.invoke(app, args)  # no drift report logged yet
    assert result.exit_code == 3, result.output
    first = json.loads(result.stdout)["decision"]
    assert first["fired"] is False and first["trigger"] is None and first["model_version"] == "1"

    _log_drift_reports(env, windows=1)
    result = runner.invoke(app, args)  # one drifted window, the policy wants two in a row
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["decision"]["suppressed_by"] == "not_k_consecutive"

    run_ids = _log_drift_reports(env, windows=2)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    fired = json.loads(result.stdout)["decision"]
    assert fired["fired"] is True and fired["trigger"] == "drift"
    assert fired["report"] == f"runs:/{run_ids[-1]}/drift"
    streak = next(r for r in fired["reasons"] if r["check"] == "consecutive_windows")
    assert streak["value"] >= 2 and streak["threshold"] == 2
    assert fired["policy"].startswith("test@")

    # a second check before any run never cancels the fire: not fired itself ("pending", not a
    # cooldown: nothing retrained yet), but a retrain is due (exit 0) and it names the decision
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    second = json.loads(result.stdout)
    assert second["decision"]["fired"] is False and second["decision"]["suppressed_by"] == "pending"
    assert second["pending"] == {"id": fired["id"], "state": "fired"}
    assert f"churnops retrain run --decision {fired['id']}" in second["decision"]["reasons"][-1]["detail"]
    text = runner.invoke(app, args[:2] + args[3:])
    assert text.exit_code == 0 and f"retrain run --decision {fired['id']}" in text.stdout

    policy = ["--policy", str(tmp_path / "policy.yaml")]
    refusals = {  # every refusal exits 3, bad input 2; none of these trains anything
        ("--decision", str(first["id"])): (3, "did not fire"),
        ("--trigger", "manual"): (3, f"churnops retrain run --decision {fired['id']}"),
        ("--decision", "999"): (2, "no retrain decision 999"),
        ("--decision", "1", "--trigger", "manual"): (2, "give one of them"),
    }
    for extra, (code, text_part) in refusals.items():
        result = runner.invoke(app, ["retrain", "run", "--json", *policy, *extra])
        assert result.exit_code == code, (extra, result.output)
        assert text_part in json.loads(result.stdout)["error"], result.output
    future = runner.invoke(app, [*args[:-1], "2199-01-01T00:00:00Z"])
    assert future.exit_code == 2 and "--now" in json.loads(future.stdout)["error"]

    engine = env.registry.engine
    rows = list_decisions(engine, name=env.settings.model_name)
    assert [(r.fired, r.suppressed_by) for r in rows] == [
        (False, None),
        (False, "not_k_consecutive"),
        (True, None),
        (False, "pending"),
        (False, "pending"),
    ]
    assert all(r.actor == "cli-tester" for r in rows)
    for statement in ("UPDATE retrain_decisions SET fired = 0", "DELETE FROM retrain_decisions"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert len(list_decisions(engine, name=env.settings.model_name)) == 5


def test_bad_policy_is_a_clear_error(env: RetrainEnv, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule: 'every day'\ncooldown_hours: -1\n")
    result = CliRunner().invoke(app, ["retrain", "check", "--policy", str(bad)])
    assert result.exit_code == 2
    assert "schedule: invalid cron" in result.stderr and "cooldown_hours" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("env", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.timeout(900)  # two retrain processes at once on a loaded 2-core machine
def test_two_concurrent_runs_one_is_refused(env: RetrainEnv, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("churnops")),
        "retrain",
        "run",
        "--trigger",
        "manual",
        "--json",
        "--policy",
        str(tmp_path / "policy.yaml"),
        "--now",
        env.now.isoformat(),
        "--start",
        env.drift_from.isoformat(),
    ]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    docs = [json.loads(out) for out, _ in outputs]
    busy = [doc for doc in docs if doc.get("busy")]
    assert len(busy) == 1, outputs  # exactly one was refused by the lock (exit 3, "busy" in the JSON)
    assert [p.returncode for p, doc in zip(procs, docs, strict=True) if doc.get("busy")] == [3]
    refused = busy[0]
    assert "another retrain of model 'churn' is running" in refused["error"]
    assert "is held by" in refused["error"]  # the lease names its holder
    (winner,) = [doc for doc in docs if not doc.get("busy")]
    assert winner["trigger"] == "manual" and winner["window"]["start"] == env.drift_from.isoformat()
    # only the run that held the lock recorded its forced decision (the refused one left nothing
    # for the cooldown and the cap to count); only it can have produced a version
    decisions = list_decisions(env.registry.engine, name=env.settings.model_name)
    assert [d.trigger.value for d in decisions if d.trigger] == ["manual"]
    versions = [r.version for r in env.registry.all_versions()]
    assert len(versions) == (2 if winner.get("version") is not None else 1)
    promotions = [t for t in env.registry.audit() if t.to_stage.value == "Production"]
    assert len(promotions) == (2 if winner.get("stage") == "Production" else 1)  # the initial one
    (decision,) = [d for d in decisions if d.trigger and d.trigger.value == "manual"]
    assert decision.state.value == winner["state"] and winner["lease_token"] >= 1
