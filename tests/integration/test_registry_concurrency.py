"""N real processes promote different versions at once, on SQLite and on PostgreSQL.

Each worker stages its own version and then promotes it to Production, all starting at the
same instant. Whatever the interleaving, the end state must have exactly one Production
version, MLflow aliases equal to the table, and exactly one transition row per change the
workers report as done (no lost and no extra rows; every version's history chains).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from registry_ext import ModelRegistry, Stage
from tests.conftest import POSTGRES_ADMIN_URL, POSTGRES_HOW, service_missing
from tests.support.registry import (
    make_registry,
    model_name_for,
    register_candidate,
    shared_postgres_store,
    shared_sqlite_store,
)
from tests.support.registry_workers import promote_to_production, warm_up

pytestmark = pytest.mark.integration

WORKERS = 4


@pytest.fixture(scope="module")
def pool() -> Iterator[Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS, initializer=warm_up) as workers:
        workers.map(time.sleep, [0] * WORKERS)  # wait until every worker has imported
        yield workers


def race(pool: Any, registry: ModelRegistry, experiment_id: str, tracking_uri: str) -> list[dict[str, Any]]:
    for seed in range(1, WORKERS + 1):
        register_candidate(registry, experiment_id=experiment_id, seed=seed)
    start_at = time.time() + 1.0
    tasks = [
        {
            "tracking_uri": tracking_uri,
            "model_name": registry.model_name,
            "version": v,
            "start_at": start_at,
            "pause_s": 0.05 * (v % 2),
        }
        for v in range(1, WORKERS + 1)
    ]
    return list(pool.map(promote_to_production, tasks))


def check_invariants(registry: ModelRegistry, results: list[dict[str, Any]]) -> None:
    records = {r.version: r for r in registry.all_versions()}
    production = [v for v, r in records.items() if r.stage is Stage.PRODUCTION]
    staging = [v for v, r in records.items() if r.stage is Stage.STAGING]
    assert len(production) == 1, records
    assert len(staging) <= 1

    aliases = registry._aliases()
    assert aliases == {"production": production[0], "staging": staging[0] if staging else None}

    history = [t for t in registry.audit() if t.from_stage is not None]
    written = [t for result in results for t in result["written"]]
    assert sorted(t.id for t in history) == sorted(t["id"] for t in written)  # one row per change
    successes = sum(1 for t in written if t["reason"].startswith("worker "))
    assert successes >= 2  # at least one worker staged and promoted its version

    for version, record in records.items():
        stage: Stage | None = None
        for t in registry.audit(version=version):
            assert t.from_stage == stage, f"version {version}: broken chain at transition {t.id}"
            stage = t.to_stage
        assert stage is record.stage
    for result in results:
        for error in result["errors"]:
            assert error.startswith("InvalidTransitionError"), error


def test_concurrent_promotions_on_sqlite(
    pool: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    uri, artifacts = shared_sqlite_store(tmp_path_factory)
    registry, experiment_id = make_registry(uri, artifacts, model_name=model_name_for(request))
    results = race(pool, registry, experiment_id, uri)
    check_invariants(registry, results)


def test_concurrent_promotions_on_postgres(
    pool: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    try:
        uri, artifacts = shared_postgres_store(
            POSTGRES_ADMIN_URL, str(tmp_path_factory.mktemp("pg-artifacts"))
        )
    except sa.exc.OperationalError as error:
        service_missing("PostgreSQL", POSTGRES_HOW, error)
        raise
    registry, experiment_id = make_registry(uri, artifacts, model_name=model_name_for(request))
    try:
        results = race(pool, registry, experiment_id, uri)
        check_invariants(registry, results)
    finally:
        registry.engine.dispose()
