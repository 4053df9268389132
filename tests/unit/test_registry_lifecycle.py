"""registry_ext on the embedded default: a real SQLite MLflow store and real model artifacts.

One MLflow database per module (creating MLflow's schema takes seconds); every test works on
its own registered model name, so tests do not see each other's versions.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from churnops.training.candidates import TRUSTED_TYPES
from registry_ext import (
    InvalidInputError,
    InvalidStageError,
    InvalidTransitionError,
    ModelRegistry,
    NoRollbackTargetError,
    RegistrationError,
    Stage,
    UnknownModelError,
    UnknownVersionError,
    registry_engine,
)
from registry_ext.migrate import (
    SchemaNotReadyError,
    current_revision,
    head_revision,
    migrate_to_head,
    require_current,
)
from registry_ext.tables import VERSION_TABLE
from tests.support.registry import (
    log_candidate,
    make_registry,
    migrated_engine,
    model_name_for,
    register_candidate,
    shared_sqlite_store,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def registry(store: tuple[str, str], request: pytest.FixtureRequest) -> tuple[ModelRegistry, str]:
    return make_registry(store[0], store[1], model_name=model_name_for(request))


def aliases(registry: ModelRegistry) -> dict[str, int | None]:
    return registry._aliases()


def transition_count(registry: ModelRegistry) -> int:
    return len(registry.audit())


def test_migrations_are_idempotent_and_use_their_own_version_table(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    engine = registry_engine(uri)
    assert current_revision(engine) is None  # opening an engine migrates nothing
    with pytest.raises(SchemaNotReadyError, match="churnops registry migrate"):
        require_current(engine)
    migrate_to_head(engine)  # registry_ext first, MLflow creates its schema afterwards
    MlflowClient(uri).search_experiments()
    migrate_to_head(engine)  # second run: no-op
    require_current(engine)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        version = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    assert {"models", "model_transitions", "model_experiments", VERSION_TABLE} <= tables
    assert {"registered_models", "alembic_version"} <= tables  # MLflow's schema, same database
    assert version == head_revision()
    assert journal == "wal"


def test_a_database_at_an_older_revision_is_upgraded(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'old.db'}"
    old = registry_engine(uri)
    migrate_to_head(old, revision="0001")
    assert current_revision(old) == "0001"
    with old.begin() as conn:  # a row written by the older schema survives the upgrade
        conn.execute(
            sa.text(
                "INSERT INTO models (name, version, stage, run_id, artifact_uri, sha256, feature_service, "
                "metrics, tags, created) VALUES ('m', 1, 'None', 'r', 'u', :s, 'f', '{}', '{}', '2026-01-01')"
            ),
            {"s": "0" * 64},
        )
    with pytest.raises(SchemaNotReadyError, match="is at schema 0001"):
        require_current(old)
    upgraded = registry_engine(uri)
    migrate_to_head(upgraded)
    assert current_revision(upgraded) == head_revision()
    with upgraded.connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("model_transitions")}
        assert conn.execute(sa.text("SELECT count(*) FROM models")).scalar_one() == 1
    assert "uq_model_transitions_registration" in indexes
    assert "ix_model_transitions_name_to_stage" not in indexes


def test_register_writes_row_mlflow_version_and_registration_transition(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, experiment_id = registry
    record = register_candidate(reg, experiment_id=experiment_id, seed=1, tags={"trigger": "drift"})
    assert record.version == 1
    assert record.stage is Stage.NONE
    assert record.feature_service == "churn_v1"
    assert record.tags == {"trigger": "drift"}
    assert record.gate_results["passed"] is True
    assert record.experiment_id == experiment_id
    mlflow_version = reg.client.get_model_version(reg.model_name, "1")
    assert mlflow_version.tags["sha256"] == record.sha256
    assert mlflow_version.run_id == record.run_id
    (registration,) = reg.audit(version=1)
    assert registration.from_stage is None
    assert registration.to_stage is Stage.NONE
    assert registration.actor == "tester"
    assert registration.gate_results == record.gate_results
    assert aliases(reg) == {"staging": None, "production": None}


def test_lifecycle_moves_aliases_and_archives_the_previous_production(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, experiment_id = registry
    for seed in (1, 2):
        register_candidate(reg, experiment_id=experiment_id, seed=seed)
    reg.promote(version=1, stage="Staging", reason="candidate", actor="alice")
    assert aliases(reg) == {"staging": 1, "production": None}
    reg.promote(version=1, stage="production", reason="ship it", actor="alice")
    assert aliases(reg) == {"staging": None, "production": 1}
    reg.promote(version=2, stage=Stage.STAGING, reason="next", actor="bob", trigger="drift")
    result = reg.change_stage(version=2, stage="Production", reason="better", actor="bob", trigger="drift")

    assert aliases(reg) == {"staging": None, "production": 2}
    assert [(t.version, t.from_stage, t.to_stage) for t in result.transitions] == [
        (2, Stage.STAGING, Stage.PRODUCTION),
        (1, Stage.PRODUCTION, Stage.ARCHIVED),
    ]
    assert result.displaced[0].reason == "superseded by version 2 in Production: better"
    assert reg.get(1).stage is Stage.ARCHIVED
    production = reg.production()
    assert production is not None and production.version == 2
    history = [(t.version, t.from_stage, t.to_stage, t.actor, t.trigger) for t in reg.audit()]
    assert history == [
        (1, None, Stage.NONE, "tester", "manual"),
        (2, None, Stage.NONE, "tester", "manual"),
        (1, Stage.NONE, Stage.STAGING, "alice", "manual"),
        (1, Stage.STAGING, Stage.PRODUCTION, "alice", "manual"),
        (2, Stage.NONE, Stage.STAGING, "bob", "drift"),
        (1, Stage.PRODUCTION, Stage.ARCHIVED, "bob", "drift"),
        (2, Stage.STAGING, Stage.PRODUCTION, "bob", "drift"),
    ]
    assert stage_tags(reg) == {1: "Archived", 2: "Production"}  # MLflow's UI shows Archived too


def stage_tags(reg: ModelRegistry) -> dict[int, str | None]:
    """The ``stage`` tag of every MLflow version of the model (what the MLflow UI lists)."""
    found = reg.client.search_model_versions(f"name='{reg.model_name}'")
    return {int(v.version): v.tags.get("stage") for v in found}


def test_a_new_staging_version_archives_the_previous_one(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    for seed in (1, 2):
        register_candidate(reg, experiment_id=experiment_id, seed=seed)
    reg.promote(version=1, stage="Staging", reason="first", actor="a")
    reg.promote(version=2, stage="Staging", reason="second", actor="a")
    assert reg.get(1).stage is Stage.ARCHIVED
    assert aliases(reg) == {"staging": 2, "production": None}
    staging = reg.staging()
    assert staging is not None and staging.version == 2


@pytest.mark.parametrize(
    ("setup", "kwargs", "error", "message"),
    [
        ([], {"version": 9, "stage": "Staging", "reason": "x"}, UnknownVersionError, "has no version 9"),
        (
            [],
            {"version": 1, "stage": "Staging", "reason": "  "},
            InvalidInputError,
            "reason must not be empty",
        ),
        ([], {"version": 1, "stage": "Live", "reason": "x"}, InvalidStageError, "invalid stage 'Live'"),
        ([], {"version": 1, "stage": "Production", "reason": "x"}, InvalidTransitionError, "Staging before"),
        (
            [],
            {"version": 1, "stage": "Staging", "reason": "x", "trigger": "cron"},
            InvalidInputError,
            "trigger",
        ),
        ([], {"version": 0, "stage": "Staging", "reason": "x"}, InvalidInputError, "positive integer"),
        (
            ["Archived"],
            {"version": 1, "stage": "Staging", "reason": "x"},
            InvalidTransitionError,
            "is Archived",
        ),
        (
            ["Staging"],
            {"version": 1, "stage": "Staging", "reason": "x"},
            InvalidTransitionError,
            "already in",
        ),
        (
            ["Staging", "Production"],
            {"version": 1, "stage": "Staging", "reason": "x"},
            InvalidTransitionError,
            "Production; it can move to Archived",
        ),
    ],
)
def test_bad_promotions_are_refused_and_write_nothing(
    registry: tuple[ModelRegistry, str], setup: list[str], kwargs: dict[str, Any], error: type, message: str
) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    for stage in setup:
        reg.promote(version=1, stage=stage, reason="setup", actor="a")
    before = (transition_count(reg), reg.get(1).stage, aliases(reg))
    with pytest.raises(error, match=message):
        reg.promote(actor="a", **kwargs)
    assert (transition_count(reg), reg.get(1).stage, aliases(reg)) == before


def test_unknown_model_is_a_clear_error(store: tuple[str, str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(store[0], registry_uri=store[0])
    reg = ModelRegistry(client=client, engine=migrated_engine(store[0]), model_name="nope")
    with pytest.raises(UnknownModelError, match="'nope' does not exist"):
        reg.promote(version=1, stage="Staging", reason="x", actor="a")
    with pytest.raises(UnknownVersionError):
        reg.get(1)
    assert reg.reconcile().recorded == ()
    assert reg.production() is None  # never registered: no Production version
    reg._alias_table_usable = False  # the same through MlflowClient (no SQL fast path)
    assert reg.production() is None


def test_rollback_walks_back_through_production_history(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    for seed in (1, 2, 3):
        register_candidate(reg, experiment_id=experiment_id, seed=seed)
        reg.promote(version=seed, stage="Staging", reason="stage", actor="a")
        reg.promote(version=seed, stage="Production", reason="ship", actor="a")
    first = reg.rollback(reason="v3 degrades recall", actor="oncall")
    assert (first.transition.version, first.transition.from_stage, first.transition.to_stage) == (
        2,
        Stage.ARCHIVED,
        Stage.PRODUCTION,
    )
    assert first.displaced[0].version == 3 and "v3 degrades recall" in first.displaced[0].reason
    assert aliases(reg)["production"] == 2
    second = reg.rollback(reason="v2 too", actor="oncall")
    assert second.transition.version == 1
    assert aliases(reg)["production"] == 1
    with pytest.raises(NoRollbackTargetError):
        reg.rollback(reason="again", actor="oncall")
    assert [r.version for r in reg.search(name=reg.model_name, stage="Production")] == [1]


def test_rollback_without_production_is_refused(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    with pytest.raises(NoRollbackTargetError, match="no Production version"):
        reg.rollback(reason="x", actor="a")
    with pytest.raises(InvalidInputError):
        reg.rollback(reason="", actor="a")


def test_transitions_are_append_only(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    for statement in ("UPDATE model_transitions SET reason = 'edited'", "DELETE FROM model_transitions"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), reg.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert [t.reason for t in reg.audit()] == ["registered"]


def test_no_code_path_updates_or_deletes_transitions() -> None:
    source = "\n".join(
        p.read_text() for p in Path("registry_ext").rglob("*.py") if "migrations" not in p.parts
    )
    assert not re.search(r"model_transitions\s*\.\s*(update|delete)\s*\(", source)
    assert not re.search(r"(UPDATE|DELETE FROM)\s+model_transitions", source, re.IGNORECASE)


def test_out_of_band_alias_move_is_recorded_by_reconcile(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    for seed in (1, 2):
        register_candidate(reg, experiment_id=experiment_id, seed=seed)
    assert stage_tags(reg) == {1: "None", 2: "None"}
    reg.promote(version=1, stage="Staging", reason="s", actor="a")
    reg.promote(version=1, stage="Production", reason="p", actor="a")
    assert reg.reconcile().recorded == ()

    reg.client.set_registered_model_alias(reg.model_name, "production", "2")  # as the MLflow UI would
    before = len(reg.audit())
    still = reg.production()  # a read: reports nothing new, writes nothing
    assert still is not None and still.version == 1
    assert reg.alias_mismatches() == {"production": (1, 2)}
    assert len(reg.audit()) == before
    assert str(reg.client.get_model_version_by_alias(reg.model_name, "production").version) == "2"
    report = reg.reconcile()  # the explicit step records the move
    assert len(report.recorded) == 2
    production = reg.production()
    assert production is not None and production.version == 2
    assert reg.alias_mismatches() == {}
    recorded = [t for t in reg.audit() if t.actor == "mlflow"]
    assert [(t.version, t.from_stage, t.to_stage) for t in recorded] == [
        (1, Stage.PRODUCTION, Stage.ARCHIVED),
        (2, Stage.NONE, Stage.PRODUCTION),
    ]
    assert "outside registry_ext" in recorded[1].reason
    assert stage_tags(reg) == {1: "Archived", 2: "Production"}  # reconcile mirrors the stage too
    assert reg.reconcile().recorded == ()  # recorded once

    reg.client.delete_registered_model_alias(reg.model_name, "production")
    report = reg.reconcile()
    assert [(t.version, t.to_stage, t.actor) for t in report.recorded] == [(2, Stage.ARCHIVED, "mlflow")]
    assert reg.production() is None


def test_alias_on_a_version_unknown_to_registry_ext_is_reported_not_adopted(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, experiment_id = registry
    record = register_candidate(reg, experiment_id=experiment_id, seed=1)
    stray = reg.client.create_model_version(reg.model_name, record.artifact_uri, run_id=record.run_id)
    reg.client.set_registered_model_alias(reg.model_name, "staging", stray.version)
    report = reg.reconcile()
    assert report.recorded == ()
    assert "did not register" in report.warnings[0]


def test_failed_database_write_deletes_the_new_mlflow_version(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    # A stray row for version 2 makes the models insert fail after MLflow created version 2.
    with reg.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO models (name, version, stage, run_id, artifact_uri, sha256, feature_service, "
                "metrics, tags, created) VALUES (:n, 2, 'None', 'r', 'u', :s, 'f', '{}', '{}', '2026-01-01')"
            ),
            {"n": reg.model_name, "s": "0" * 64},
        )
    with pytest.raises(RegistrationError, match="version 2 failed, the MLflow version was removed"):
        register_candidate(reg, experiment_id=experiment_id, seed=2)
    versions = reg.client.search_model_versions(f"name = '{reg.model_name}'")
    assert sorted(int(v.version) for v in versions) == [1]
    assert [t.version for t in reg.audit()] == [1]


def test_failed_transition_insert_changes_no_stage_and_restores_aliases(
    registry: tuple[ModelRegistry, str],
) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    reg.promote(version=1, stage="Staging", reason="s", actor="a")
    with reg.engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TRIGGER test_refuse_insert BEFORE INSERT ON model_transitions "
                "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"
            )
        )
    try:
        with pytest.raises(Exception, match="disk full"):
            reg.promote(version=1, stage="Production", reason="p", actor="a")
    finally:
        with reg.engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER test_refuse_insert"))
    assert reg.get(1).stage is Stage.STAGING
    assert aliases(reg) == {"staging": 1, "production": None}
    assert reg.reconcile().recorded == ()


def test_register_refuses_a_wrong_sha256_before_creating_anything(
    registry: tuple[ModelRegistry, str],
) -> None:
    from churnops.contracts.artifacts import ArtifactIntegrityError

    reg, experiment_id = registry
    logged = log_candidate(reg.client, experiment_id=experiment_id, seed=1)
    with pytest.raises(ArtifactIntegrityError, match="expected 0{64}, actual " + logged.sha256):
        reg.register(
            run_id=logged.run_id,
            sha256="0" * 64,
            feature_service="churn_v1",
            metrics={"auc": 0.8},
            actor="a",
        )
    assert reg.client.search_model_versions(f"name = '{reg.model_name}'") == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"metrics": {"auc": float("nan")}}, "metric 'auc' is not finite"),
        ({"metrics": {"auc": "high"}}, "metric 'auc' is not a number"),
        ({"sha256": "abc"}, "sha256 must be 64 hex"),
        ({"feature_service": ""}, "feature_service must not be empty"),
        ({"run_id": "0" * 32}, "unknown MLflow run"),
        ({"artifact_path": "nothing-here"}, "no model at artifact path 'nothing-here'"),
        ({"gate_results": {"auc": float("inf")}}, "gate_results must be JSON"),
    ],
)
def test_register_refuses_bad_input(
    registry: tuple[ModelRegistry, str], override: dict[str, Any], message: str
) -> None:
    reg, experiment_id = registry
    logged = log_candidate(reg.client, experiment_id=experiment_id, seed=1)
    kwargs: dict[str, Any] = {
        "run_id": logged.run_id,
        "sha256": logged.sha256,
        "feature_service": "churn_v1",
        "metrics": {"auc": 0.8},
        "actor": "a",
        **override,
    }
    with pytest.raises(InvalidInputError, match=message):
        reg.register(**kwargs)
    assert reg.client.search_model_versions(f"name = '{reg.model_name}'") == []


def test_actor_defaults_to_the_os_user(
    registry: tuple[ModelRegistry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library names the OS user when the caller names nobody; CHURNOPS_ACTOR is read by the
    CLI (tests/unit/test_registry_cli.py), never by the library."""
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    monkeypatch.setenv("CHURNOPS_ACTOR", "ci-bot")
    monkeypatch.setenv("LOGNAME", "os-user")  # getpass.getuser() reads LOGNAME first
    assert reg.promote(version=1, stage="Staging", reason="auto").actor == "os-user"


def test_load_model_verifies_the_signed_manifest_and_refuses_a_tampered_local_artifact(
    registry: tuple[ModelRegistry, str],
) -> None:
    from churnops.contracts.artifacts import ArtifactIntegrityError
    from tests.support.registry import FEATURES, churn_frame

    reg, experiment_id = registry
    record = register_candidate(reg, experiment_id=experiment_id, seed=1)
    model = reg.load_model(record.version)
    assert model.predict_proba(churn_frame(seed=9, rows=5)[FEATURES]).shape == (5, 2)

    weights = Path(record.artifact_uri) / "model.skops"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError) as caught:
        reg.load_model(record.version)
    message = str(caught.value)
    assert f"version {record.version}" in message and "changed file 'model.skops'" in message


def test_register_a_model_logged_with_log_model(
    registry: tuple[ModelRegistry, str], store: tuple[str, str]
) -> None:
    """MLflow 3's LoggedModel layout (files under models/<model_id>/artifacts) registers too."""
    import mlflow
    import mlflow.sklearn

    from churnops.contracts.artifacts import sha256_of_path
    from tests.support.registry import fit_pipeline

    reg, experiment_id = registry
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(store[0])
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = mlflow.sklearn.log_model(
                fit_pipeline(seed=4),
                name="model",
                serialization_format="skops",
                skops_trusted_types=list(TRUSTED_TYPES),  # what training trusts for its pipeline
                pip_requirements=["scikit-learn"],
            )
        location = reg.client.get_logged_model(info.model_id).artifact_location
        record = reg.register(
            run_id=run.info.run_id,
            sha256=sha256_of_path(Path(location)),
            feature_service="churn_v1",
            metrics={"auc": 0.8},
            actor="a",
        )
    finally:
        mlflow.set_tracking_uri(previous)
    assert record.artifact_uri == location
    assert reg.client.get_model_version(reg.model_name, "1").source == f"models:/{info.model_id}"
    assert reg.load_model(1) is not None


def test_search_filters_use_the_indexes(registry: tuple[ModelRegistry, str]) -> None:
    from registry_ext.records import SearchQuery
    from registry_ext.search import search_query

    reg, _ = registry
    query = search_query(
        SearchQuery(name="churn", stage=Stage.PRODUCTION, tags={"trigger": "drift"}), dialect="sqlite"
    )
    compiled = query.compile(reg.engine, compile_kwargs={"literal_binds": True})
    with reg.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "SEARCH models USING INDEX" in plan, plan
    assert "SCAN models" not in plan, plan


@pytest.mark.parametrize("damage", ["tampered", "missing"])
def test_promote_and_rollback_refuse_a_version_whose_artifact_does_not_verify(
    registry: tuple[ModelRegistry, str], damage: str
) -> None:
    import shutil

    from churnops.contracts.artifacts import ArtifactIntegrityError

    reg, experiment_id = registry
    first = register_candidate(reg, experiment_id=experiment_id, seed=1)
    second = register_candidate(reg, experiment_id=experiment_id, seed=2)
    reg.promote(version=first.version, stage="Staging", reason="first")
    reg.promote(version=first.version, stage="Production", reason="first")

    def break_(record: Any) -> Path:
        root = Path(record.artifact_uri)
        saved = root.parent / f"{root.name}.saved"
        shutil.copytree(root, saved)
        if damage == "tampered":
            weights = root / "model.skops"
            weights.write_bytes(weights.read_bytes() + b"\0")
        else:
            shutil.rmtree(root)
        return saved

    def repair(record: Any, saved: Path) -> None:
        shutil.rmtree(record.artifact_uri, ignore_errors=True)
        shutil.move(saved, record.artifact_uri)

    before = transition_count(reg)
    saved = break_(second)
    for stage in ("Staging", "Production"):
        with pytest.raises(
            ArtifactIntegrityError, match=f"refusing to move version {second.version} to {stage}"
        ):
            reg.promote(version=second.version, stage=stage, reason="should be refused")
    assert transition_count(reg) == before and aliases(reg)["production"] == first.version
    repair(second, saved)
    reg.promote(version=second.version, stage="Staging", reason="repaired")
    reg.promote(version=second.version, stage="Production", reason="repaired")

    saved = break_(first)  # rolling back to a broken version is refused too
    with pytest.raises(ArtifactIntegrityError, match=f"roll Production back to version {first.version}"):
        reg.rollback(reason="should be refused")
    assert aliases(reg)["production"] == second.version
    repair(first, saved)
    assert reg.rollback(reason="repaired").transition.version == first.version
