"""registry_ext on real PostgreSQL: migrations, lifecycle, append-only trigger, tag search."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from registry_ext import ModelRegistry, Stage, registry_engine
from registry_ext.migrate import head_revision, migrate_to_head
from registry_ext.tables import VERSION_TABLE
from tests.conftest import POSTGRES_ADMIN_URL, POSTGRES_HOW, service_missing
from tests.support.registry import make_registry, model_name_for, register_candidate, shared_postgres_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    try:
        return shared_postgres_store(POSTGRES_ADMIN_URL, str(tmp_path_factory.mktemp("pg-artifacts")))
    except sa.exc.OperationalError as error:
        service_missing("PostgreSQL", POSTGRES_HOW, error)
        raise


@pytest.fixture
def registry(pg_store: tuple[str, str], request: pytest.FixtureRequest) -> tuple[ModelRegistry, str]:
    reg, experiment_id = make_registry(pg_store[0], pg_store[1], model_name=model_name_for(request))
    yield reg, experiment_id
    reg.engine.dispose()


def test_postgres_urls_use_psycopg3_and_migrations_are_idempotent(pg_store: tuple[str, str]) -> None:
    from mlflow import MlflowClient

    plain = pg_store[0].replace("postgresql+psycopg://", "postgresql://")
    engine = registry_engine(plain)
    migrate_to_head(engine)
    MlflowClient(pg_store[0]).search_experiments()  # MLflow's schema next to ours
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        migrate_to_head(engine)  # again: no-op
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            revision = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("models")}
        assert {
            "models",
            "model_transitions",
            "model_experiments",
            "registered_models",
            "alembic_version",
        } <= tables
        assert revision == head_revision()
        assert {"uq_models_one_production", "uq_models_one_staging", "ix_models_tags"} <= indexes
    finally:
        engine.dispose()


def test_lifecycle_search_and_rollback_on_postgres(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    register_candidate(reg, experiment_id=experiment_id, seed=2, tags={"trigger": "drift", "team": "risk"})
    for version in (1, 2):
        reg.promote(version=version, stage="Staging", reason="s", actor="a")
        reg.promote(version=version, stage="Production", reason="p", actor="a", trigger="drift")
    found = reg.search(name=reg.model_name, stage="Production", tags={"trigger": "drift"})
    assert [r.version for r in found] == [2]
    assert reg.search(name=reg.model_name, tags={"trigger": "drift", "team": "nobody"}) == []
    assert [r.version for r in reg.search(name="*" + reg.model_name[-25:], version=1)] == [1]
    assert reg.model_name in {r.name for r in reg.search(name="test_registry_*", version=1)}
    assert reg.search(name="test%registry*") == []  # only * is a wildcard
    result = reg.rollback(reason="v2 regressed", actor="oncall")
    assert result.transition.version == 1
    assert int(reg.client.get_model_version_by_alias(reg.model_name, "production").version) == 1
    assert reg.get(2).stage is Stage.ARCHIVED


def test_transitions_are_append_only_on_postgres(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    register_candidate(reg, experiment_id=experiment_id, seed=1)
    for statement in (
        "UPDATE model_transitions SET reason = 'edited'",
        "DELETE FROM model_transitions",
        "TRUNCATE model_transitions CASCADE",
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), reg.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert [t.reason for t in reg.audit()] == ["registered"]


def test_database_refuses_a_second_production_version(registry: tuple[ModelRegistry, str]) -> None:
    reg, experiment_id = registry
    for seed in (1, 2):
        register_candidate(reg, experiment_id=experiment_id, seed=seed)
    reg.promote(version=1, stage="Staging", reason="s", actor="a")
    reg.promote(version=1, stage="Production", reason="p", actor="a")
    with pytest.raises(sa.exc.IntegrityError), reg.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE models SET stage = 'Production' WHERE name = :n AND version = 2"),
            {"n": reg.model_name},
        )
