"""The real Telco file, ingested as one snapshot: no time axis, so a seeded stratified split;
the chosen model must reach ROC-AUC >= 0.84 on its held-out test split."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from churnops.data.ingest import ingest_telco
from churnops.features.store import apply
from churnops.settings import Settings
from churnops.training import TrainOptions, load_policy, train
from churnops.wiring import feast_definitions, feature_store, model_registry

pytestmark = pytest.mark.integration


def test_telco_snapshot_trains_a_model_above_0_84_roc_auc(
    settings: Settings, telco_csv: Path, record_property: Callable[[str, object], None]
) -> None:
    report = ingest_telco(
        path=telco_csv,
        as_of=datetime(2024, 6, 30, tzinfo=UTC),
        sources_dir=settings.sources_dir,
        quarantine_dir=settings.quarantine_dir,
    )
    assert report.accepted == 7043
    store = feature_store(settings)
    apply(store=store, defs=feast_definitions(settings))
    registry = model_registry(settings, write=True)
    client, engine = registry.client, registry.engine
    try:
        result = train(
            store=store,
            client=client,
            registry=registry,
            sources_dir=settings.sources_dir,
            policy=load_policy(),
            options=TrainOptions(actor="tester"),
            artifact_location=settings.artifact_location,
        )
    finally:
        engine.dispose()
    auc = result.test.overall["roc_auc"]
    record_property("telco_test_roc_auc", round(auc, 4))
    record_property("telco_family", result.family)
    print(f"\nTelco held-out ROC-AUC {auc:.4f} ({result.family}, {result.test.rows} rows)")
    assert result.split_strategy == "stratified_random"
    assert "1 distinct time" in result.split_reason
    assert result.test.rows == 1409 and result.validation.rows == 1409
    assert result.windows["test"].positives == pytest.approx(0.2654 * 1409, abs=2)
    assert auc >= 0.84
    assert result.gates.passed and result.version == 1
    assert client.get_run(result.run_id).data.tags["churnops.split_strategy"] == "stratified_random"
