"""register / promote with a fence (a lease's check) on a real MLflow SQLite store: a holder
that lost its lease registers nothing (the MLflow version is removed again) and moves no stage
(the aliases are put back), while the holder of the current token writes as usual."""

from __future__ import annotations

import pytest

from churnops.contracts.stages import Stage
from registry_ext.leases import LeaseLostError, acquire_lease
from tests.support.leases import ManualClock
from tests.support.registry import log_candidate, make_registry, model_name_for, shared_sqlite_store


def test_a_lost_lease_cannot_register_or_promote(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = shared_sqlite_store(tmp_path_factory)
    registry, experiment_id = make_registry(store[0], store[1], model_name=model_name_for(request))
    clock = ManualClock()
    key = f"retrain:{registry.model_name}"
    a = acquire_lease(registry.engine, key=key, holder="A", ttl_s=10, clock=clock)
    clock.advance(11)
    b = acquire_lease(registry.engine, key=key, holder="B", ttl_s=3600, clock=clock)
    logged = log_candidate(registry.client, experiment_id=experiment_id, seed=3)
    arguments = {
        "run_id": logged.run_id,
        "sha256": logged.sha256,
        "feature_service": "churn_v1",
        "metrics": {"test_roc_auc": 0.8},
        "actor": "tester",
    }
    with pytest.raises(LeaseLostError, match="taken over by 'B'"):
        registry.register(**arguments, fence=a.check)
    assert registry.all_versions() == []
    assert registry.client.search_model_versions(f"name = '{registry.model_name}'") == []

    version = registry.register(**arguments, fence=b.check).version
    with pytest.raises(LeaseLostError):
        registry.promote(version=version, stage=Stage.STAGING, reason="r", actor="A", fence=a.check)
    assert registry.get(version).stage == Stage.NONE
    assert registry.alias_mismatches() == {} and registry.staging() is None
    registry.promote(version=version, stage=Stage.STAGING, reason="r", actor="B", fence=b.check)
    assert registry.staging().version == version  # type: ignore[union-attr]
    registry.engine.dispose()
