"""Serving answers from a real 3-node Redis Cluster (CHURNOPS_REDIS_TYPE=redis_cluster).

Materialization goes through Feast's cluster client (the direct writer's multi-key Lua batches
need one node; one log line says so); the direct reader sends one HMGET per id through redis-py's
cluster pipeline, checked at warm-up against Feast's ``get_online_features`` on the cluster. The
reader's own equality with Feast on the cluster is checked in tests/integration/test_fastpath_stores.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from churnops.settings import Settings
from tests.support.serving_env import Environment, ServiceProcess, build_environment, service_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a BentoML process (about 1 min here)


@pytest.fixture
def cluster_service(
    tmp_path: Path, redis_cluster: str, feast_project: str
) -> Iterator[tuple[ServiceProcess, Environment]]:
    settings = Settings(
        home=tmp_path / "home",
        project=feast_project,
        redis_url=redis_cluster,
        redis_type="redis_cluster",
        _env_file=None,  # type: ignore[call-arg]
    )
    env = build_environment(settings=settings, n_customers=50)
    service = ServiceProcess(env=service_env(settings), log_path=tmp_path / "service.log")
    service.start()
    try:
        service.wait_ready()
        yield service, env
    finally:
        service.stop()


def test_predict_reads_features_from_the_cluster(cluster_service) -> None:  # type: ignore[no-untyped-def]
    service, env = cluster_service
    ids = [*env.customer_ids[:5], env.stale_ids[0], "NOBODY-0000"]
    answer = httpx.post(f"{service.url}/predict", json={"customer_ids": ids}, timeout=10)
    assert answer.status_code == 200, answer.text
    statuses = [p["status"] for p in answer.json()["predictions"]]
    assert statuses == ["ok"] * 5 + ["stale_features", "unknown_customer"]
    assert all(0 < p["churn_probability"] < 1 for p in answer.json()["predictions"][:5])
    log = Path(service.log_path).read_text(errors="replace")
    assert "direct Redis reader not used" not in log
    assert "disagrees with Feast" not in log
