"""`churnops monitor drift|performance` end to end on generated data with an injected price rise.

Real parts: the generator, Feast (DuckDB/SQLite), the real training code and registry_ext, batch
scoring into the parquet prediction log, Evidently, MLflow (SQLite), the Evidently workspace and a
real Pushgateway.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.data.generate import generate_churn_data, write_generated
from churnops.features.store import apply
from churnops.settings import Settings
from churnops.training import TrainOptions, load_policy, train
from churnops.wiring import feast_definitions, feature_store, mlflow_client, open_registry
from tests.support.prometheus import Pushgateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DRIFT_FROM = date(2024, 9, 1)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    home = tmp_path_factory.mktemp("monitor") / "home"
    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    data = generate_churn_data(customers=6000, months=12, seed=13, data_drift_from=DRIFT_FROM)
    write_generated(data=data, sources_dir=settings.sources_dir)
    store = feature_store(settings)
    apply(store=store, defs=feast_definitions(settings))
    with open_registry(settings, write=True) as registry:
        result = train(
            store=store,
            client=registry.client,
            registry=registry,
            sources_dir=settings.sources_dir,
            policy=load_policy(),
            options=TrainOptions(labels_end=datetime(2024, 8, 1, tzinfo=UTC)),
            artifact_location=settings.artifact_location,
        )
        assert result.version is not None
        registry.promote(version=result.version, stage="Staging", reason="test", actor="tests")
        registry.promote(version=result.version, stage="Production", reason="test", actor="tests")
    return home, settings


def invoke(home: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict:  # type: ignore[type-arg]
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return doc


def test_drift_flags_the_price_rise_only_after_it(
    monitored: tuple[Path, Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home, settings = monitored
    before, after = "2024-07-01T00:00:00Z", "2024-11-01T00:00:00Z"
    for when in (before, after):
        scored = invoke(home, monkeypatch, "score", "--as-of", when)
        assert scored["rows"] == scored["scored"] > 1000
    gateway = Pushgateway(workdir=tmp_path / "pushgateway")
    gateway.start()
    try:
        pre = invoke(
            home, monkeypatch, "monitor", "drift", "--start", before, "--end", "2024-07-02T00:00:00Z"
        )
        post = invoke(
            home,
            monkeypatch,
            "monitor",
            "drift",
            "--start",
            after,
            "--end",
            "2024-11-02T00:00:00Z",
            "--push-gateway",
            gateway.url,
        )
        pushed = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    finally:
        gateway.stop()
    drifted = {d["feature"] for d in post["data_drift"]["features"] if d["drifted"]}
    assert "monthly_charges" in drifted
    assert not drifted & {"gender", "senior_citizen", "partner", "dependents"}
    assert post["status"] == "drift" and post["model"] == {"name": "churn", "version": "1"}
    assert not [d["feature"] for d in pre["data_drift"]["features"] if d["drifted"]]
    assert pre["status"] == "no_drift"
    assert post["current"]["rows"] > 1000 and pre["current"]["rows"] > 1000
    assert post["concept_drift"]["drifted"] is False  # a price rise is not concept drift
    for doc in (pre, post):
        report = Path(doc["report_html"])
        assert report.is_file() and report.parent == home / "reports"
    # Pushed gauges carry the version and the feature, never a customer id.
    assert 'churnops_drift_score{feature="monthly_charges"' in pushed and 'model_version="1"' in pushed
    assert post["pushed_to"] == gateway.url
    # One MLflow monitoring run per report, linked to the version by tag.
    client = mlflow_client(settings)
    experiment = client.get_experiment_by_name("churn-monitoring")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`churnops.model_version` = '1'")
    assert len(runs) >= 2
    # The Evidently workspace holds them too (what `evidently ui --workspace <home>/evidently` shows).
    assert (home / "evidently").is_dir() and any((home / "evidently").rglob("*.json"))


def test_performance_reports_matured_labels_only(
    monitored: tuple[Path, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = monitored
    invoke(home, monkeypatch, "score", "--as-of", "2024-07-01T00:00:00Z")
    early = invoke(home, monkeypatch, "monitor", "performance", "--as-of", "2024-07-15T00:00:00Z")
    assert early["matured"] == 0  # the July label matures a month later
    later = invoke(home, monkeypatch, "monitor", "performance", "--as-of", "2025-01-01T00:00:00Z")
    assert later["matured"] > 1000
    (version,) = later["versions"]
    assert version["model_version"] == "1" and version["status"] == "ok"
    assert 0.6 < version["metrics"]["roc_auc"] <= 1.0
    assert "roc_auc" in version["delta"]


def test_monitor_says_what_to_run_first_on_an_empty_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "empty"))
    result = CliRunner().invoke(app, ["monitor", "drift", "--json"])
    assert result.exit_code == 2
    assert "Production" in json.loads(result.stdout)["error"]
