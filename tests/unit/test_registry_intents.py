"""Write-ahead intents, unregistered versions, rollback --to and stale runs on a real SQLite
MLflow store (the crash itself, with a killed process, is tests/integration/test_registry_crash.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnops.commands.registry import app
from churnops.contracts.artifacts import ArtifactIntegrityError
from churnops.contracts.clock import wall_clock
from churnops.contracts.mlflow_keys import HEARTBEAT_TAG
from registry_ext import (
    InvalidTransitionError,
    ModelRegistry,
    RefusedError,
    Stage,
    UnregisteredVersionError,
)
from registry_ext.lifecycle import plan_promotion
from tests.support.registry import (
    log_candidate,
    make_registry,
    model_name_for,
    register_candidate,
    shared_sqlite_store,
    staged_and_live,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def registry(store: tuple[str, str], request: pytest.FixtureRequest) -> tuple[ModelRegistry, str]:
    return make_registry(store[0], store[1], model_name=model_name_for(request))


@pytest.fixture
def run_cli(
    store: tuple[str, str],
    registry: tuple[ModelRegistry, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", store[0])
    monkeypatch.setenv("CHURNOPS_MODEL_NAME", registry[0].model_name)
    monkeypatch.setenv("CHURNOPS_ACTOR", "cli-user")
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def half_registered(reg: ModelRegistry, experiment_id: str, *, seed: int) -> int:
    """An MLflow version exactly as a registration killed before its table write leaves it."""
    from churnops.contracts.mlflow_keys import FEATURE_SERVICE_TAG, SHA256_TAG

    logged = log_candidate(reg.client, experiment_id=experiment_id, seed=seed)
    version = reg.client.create_model_version(
        name=reg.model_name,
        source=f"runs:/{logged.run_id}/model",
        run_id=logged.run_id,
        tags={SHA256_TAG: logged.sha256, FEATURE_SERVICE_TAG: "churn_v1", "stage": "None"},
    )
    return int(version.version)


def test_every_stage_change_completes_its_intent_with_actor_reason_and_target(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, experiment_id = registry
    staged_and_live(reg, experiment_id, seeds=(1,))
    intents = reg.intents()
    assert [(i.kind, i.status, i.actor, i.reason) for i in intents] == [
        ("promote", "completed", "a", "stage"),
        ("promote", "completed", "a", "ship"),
    ]
    assert intents[1].target["aliases_before"] == {"staging": 1, "production": None}
    assert intents[1].target["aliases_after"] == {"staging": None, "production": 1}
    assert reg.intents(pending_only=True) == []


def test_an_interrupted_promotion_is_finished_with_the_real_actor_and_reason(
    registry: tuple[ModelRegistry, str],
) -> None:
    """What a kill between the alias move and the table write leaves, then the next command."""
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    reg.promote(version=1, stage="Staging", reason="stage", actor="a")
    before = reg._aliases()
    after = {"staging": None, "production": 1}
    changes = plan_promotion(
        version=1,
        current=Stage.STAGING,
        target=Stage.PRODUCTION,
        holders={Stage.STAGING: 1},
        reason="go live",
    )
    reg._begin_intent(
        kind="promote",
        actor="alice",
        reason="go live",
        trigger="drift",
        target=reg._intent_target(changes, before, after),
    )
    reg._set_aliases(before, after)  # ... and the process dies here
    assert reg.alias_mismatches() == {"staging": (1, None), "production": (None, 1)}
    report = reg.reconcile()
    assert [(i.kind, i.status, i.actor) for i in report.recovered] == [("promote", "recovered", "alice")]
    assert report.agrees and reg.alias_mismatches() == {}
    last = reg.audit()[-1]
    assert (last.version, last.to_stage, last.actor, last.reason, last.trigger) == (
        1,
        Stage.PRODUCTION,
        "alice",
        "go live",
        "drift",
    )
    assert "mlflow" not in {t.actor for t in reg.audit()}


def test_an_intent_that_moved_nothing_is_reverted_and_changes_nothing(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    before = reg._aliases()
    changes = plan_promotion(version=1, current=Stage.NONE, target=Stage.STAGING, holders={}, reason="s")
    reg._begin_intent(
        kind="promote",
        actor="bob",
        reason="s",
        trigger="manual",
        target=reg._intent_target(changes, before, {**before, "staging": 1}),
    )
    audit = reg.audit()
    reg.promote(version=1, stage="Archived", reason="next write recovers first", actor="carol")
    (first, second) = reg.intents()
    assert (first.status, first.actor) == ("reverted", "bob")
    assert second.status == "completed"
    assert [t.actor for t in reg.audit()][len(audit) :] == ["carol"]


def test_an_unregistered_version_is_listed_refused_then_adopted(
    registry: tuple[ModelRegistry, str], run_cli: Any
) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    hidden = half_registered(reg, experiment_id, seed=2)
    assert [u.version for u in reg.unregistered()] == [hidden]
    listed = run_cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["version"]: row["stage"] for row in __import__("json").loads(listed.stdout)}
    assert rows == {hidden: "unregistered", 1: "None"}
    table = run_cli("list")
    assert "unregistered" in table.stdout and f"registry adopt {hidden}" in table.stderr
    with pytest.raises(UnregisteredVersionError, match=f"registry adopt {hidden}"):
        reg.promote(version=hidden, stage="Staging", reason="x", actor="a")
    refused = run_cli("promote", str(hidden), "--stage", "Staging", "--reason", "x")
    assert refused.exit_code == 3 and "never registered" in refused.stderr
    reconciled = run_cli("reconcile", "--json")
    doc = __import__("json").loads(reconciled.stdout)
    assert reconciled.exit_code == 3 and doc["agree"] is False and doc["unregistered"] == [hidden]
    assert "agree" not in run_cli("reconcile").stdout
    adopted = run_cli("adopt", str(hidden), "--reason", "registration was killed")
    assert adopted.exit_code == 0, adopted.output
    record = reg.get(hidden)
    assert record.stage is Stage.NONE and record.gate_results["adopted"] is True
    assert reg.audit(version=hidden)[0].reason == "adopted: registration was killed"
    assert reg.audit(version=hidden)[0].actor == "cli-user"
    assert reg.unregistered() == []
    assert run_cli("reconcile").exit_code == 0
    assert run_cli("promote", str(hidden), "--stage", "Staging", "--reason", "ok").exit_code == 0
    with pytest.raises(RefusedError, match="registered already"):
        reg.adopt(version=hidden, reason="again", actor="a")


def test_adoption_verifies_the_artifact_and_delete_unregistered_is_audited(
    registry: tuple[ModelRegistry, str], run_cli: Any
) -> None:
    reg, experiment_id = registry
    staged_and_live(reg, experiment_id, seeds=(1,))
    hidden = half_registered(reg, experiment_id, seed=2)
    reg.client.set_registered_model_alias(reg.model_name, "production", str(hidden))  # hidden, then served
    source = reg.client.get_model_version(reg.model_name, str(hidden))
    weights = Path(reg.client.get_run(source.run_id).info.artifact_uri) / "model" / "model.skops"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError):
        reg.adopt(version=hidden, reason="try", actor="a")
    refused = run_cli("adopt", str(hidden), "--reason", "try")
    assert refused.exit_code == 3 and "SHA-256" in refused.stderr
    with pytest.raises(RefusedError, match="archived, never deleted"):
        reg.delete_unregistered(version=1, reason="no", actor="a")
    deleted = run_cli("delete-unregistered", str(hidden), "--reason", "tampered artifact")
    assert deleted.exit_code == 0, deleted.output
    assert reg.unregistered() == [] and reg._aliases()["production"] == 1  # served alias put back
    assert reg.production() is not None and reg.production().version == 1  # type: ignore[union-attr]
    (intent,) = [i for i in reg.intents() if i.kind == "delete_unregistered"]
    assert (intent.status, intent.actor, intent.reason) == ("completed", "cli-user", "tampered artifact")
    audit = run_cli("audit")
    assert "delete v2" in audit.stdout and "tampered" in audit.stdout
    assert max(len(line) for line in audit.stdout.splitlines()) <= 80


def test_a_stage_tag_mlflow_refuses_is_logged_not_lost_silently(
    registry: tuple[ModelRegistry, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The table is the truth and the change stands, but the tag that did not follow is said."""
    import dataclasses

    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    reg.promote(version=1, stage="Staging", reason="stage", actor="a")
    staged = reg.audit()[-1]
    with caplog.at_level("WARNING", logger="registry_ext.registry"):
        reg._mirror_stage_tags([dataclasses.replace(staged, version=99)])  # MLflow holds no v99
    (record,) = [r for r in caplog.records if r.name == "registry_ext.registry"]
    assert "version 99 is Staging" in record.getMessage() and record.exc_info is not None


def test_rollback_to_brings_an_archived_version_back_and_forward(
    registry: tuple[ModelRegistry, str], run_cli: Any
) -> None:
    reg, experiment_id = registry
    staged_and_live(reg, experiment_id, seeds=(1, 2))
    register_candidate(reg, experiment_id=experiment_id, seed=3)
    reg.promote(version=3, stage="Archived", reason="never served", actor="a")
    back = reg.rollback(reason="v2 regressed", actor="oncall")
    assert back.transition.version == 1 and reg.get(2).stage is Stage.ARCHIVED
    result = run_cli(
        "rollback", "--to", "2", "--reason", "v2 was fine after all", "--trigger", "performance", "--json"
    )
    assert result.exit_code == 0, result.output
    assert reg.production().version == 2  # type: ignore[union-attr]
    assert reg._aliases()["production"] == 2
    last = reg.audit(version=2)[-1]
    assert (last.from_stage, last.to_stage, last.actor, last.trigger) == (
        Stage.ARCHIVED,
        Stage.PRODUCTION,
        "cli-user",
        "performance",
    )
    assert "v2 was fine after all" in last.reason
    with pytest.raises(InvalidTransitionError, match="never in Production"):
        reg.rollback(reason="x", actor="a", to=3)
    assert run_cli("rollback", "--to", "3", "--reason", "x").exit_code == 3
    assert run_cli("rollback", "--to", "9", "--reason", "x").exit_code == 2  # no such version: bad input
    assert reg.rollback(reason="back again", actor="a", to=1).transition.version == 1
    audit = run_cli("audit")
    assert audit.exit_code == 0
    assert "gates" in audit.stdout and "1/1 pass" in audit.stdout
    assert max(len(line) for line in audit.stdout.splitlines()) <= 80


def test_rollback_to_reverifies_the_artifact(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    staged_and_live(reg, experiment_id, seeds=(1, 2))
    weights = Path(reg.get(1).artifact_uri) / "model.skops"
    original = weights.read_bytes()
    weights.write_bytes(original + b"\0")
    try:
        with pytest.raises(ArtifactIntegrityError, match="return version 1 to Production"):
            reg.rollback(reason="x", actor="a", to=1)
    finally:
        weights.write_bytes(original)
    assert reg.production().version == 2  # type: ignore[union-attr]


def test_runs_left_running_are_marked_failed_by_the_injected_clock(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, experiment_id = registry
    killed = reg.client.create_run(experiment_id).info.run_id
    alive = reg.client.create_run(experiment_id).info.run_id
    now = wall_clock()
    assert reg.fail_stale_runs(now=now, experiment_ids=[experiment_id]) == []  # just started
    later = now + timedelta(hours=7)
    reg.client.set_tag(alive, HEARTBEAT_TAG, (later - timedelta(minutes=5)).isoformat())
    failed = reg.fail_stale_runs(now=later, experiment_ids=[experiment_id])
    assert [r.run_id for r in failed] == [killed]
    assert reg.client.get_run(killed).info.status == "FAILED"
    assert reg.client.get_run(alive).info.status == "RUNNING"
    (intent,) = [i for i in reg.intents() if i.kind == "fail_run"]
    assert intent.target["run_id"] == killed
    reg.client.set_terminated(alive)
