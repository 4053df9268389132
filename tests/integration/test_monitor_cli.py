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
    # September: after the model's training window (its July snapshots are in-sample, never live)
    invoke(home, monkeypatch, "score", "--as-of", "2024-09-01T00:00:00Z")
    early = invoke(home, monkeypatch, "monitor", "performance", "--as-of", "2024-09-15T00:00:00Z")
    assert early["matured"] == 0  # the September label matures a month later
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


@pytest.mark.timeout(900)  # two `churnops score` start-ups at once: slow on a loaded 2-core machine
def test_what_if_flood_and_repeated_scoring_leave_the_window_unchanged(
    monitored: tuple[Path, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: what-if rows never enter a window, and a batch run again (or twice at once)
    adds no second copy, so neither can fire or mask a drift retrain."""
    import os
    import subprocess
    import sys

    import pandas as pd

    from churnops.contracts.prediction_log import (
        BATCH_ENDPOINT,
        COLUMNS,
        WHAT_IF_ENDPOINT,
        read_prediction_log,
    )
    from churnops.wiring import prediction_log_dir, prediction_log_writer

    home, settings = monitored
    as_of, window = (
        "2024-06-01T00:00:00Z",
        ("--start", "2024-06-01T00:00:00Z", "--end", "2024-06-02T00:00:00Z"),
    )
    first = invoke(home, monkeypatch, "score", "--as-of", as_of)
    before = invoke(home, monkeypatch, "monitor", "drift", *window)
    assert before["status"] == "no_drift" and before["current"]["rows"] == first["scored"]

    # The same batch again, then two `churnops score` processes at once.
    again = invoke(home, monkeypatch, "score", "--as-of", as_of)
    assert again["request_id"] == first["request_id"]
    churnops = str(Path(sys.executable).with_name("churnops"))
    env = {**os.environ, "CHURNOPS_HOME": str(home)}  # the tests' own variables: no outside ones
    runs = [
        subprocess.Popen([churnops, "score", "--as-of", as_of], env=env, stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    assert [run.wait(timeout=600) for run in runs] == [0, 0]
    when = pd.Timestamp(as_of)
    log = read_prediction_log(prediction_log_dir(settings)).to_pandas()
    batch = log[(log["ts"] == when) & (log["endpoint"] == BATCH_ENDPOINT)]
    assert len(batch) == first["rows"] and batch["customer_id"].is_unique

    # A what-if flood inside the window: 4 requests of 1,000 identical, extreme rows.
    row = batch.iloc[0]
    sink = prediction_log_writer(settings)
    for request in range(4):
        columns = {name: [row[name]] * 1000 for name in COLUMNS}
        columns |= {
            "endpoint": [WHAT_IF_ENDPOINT] * 1000,
            "request_id": [f"what-if-{request}"] * 1000,
            "ts": [when.to_pydatetime() + pd.Timedelta(minutes=10)] * 1000,
            "monthly_charges": [400.0] * 1000,
            "tenure": [1] * 1000,
            "score": [0.99] * 1000,
        }
        sink("2024-06-01", columns)
    flooded = read_prediction_log(prediction_log_dir(settings)).to_pandas()
    assert (flooded["endpoint"] == WHAT_IF_ENDPOINT).sum() >= 4000  # kept in the log, marked as such

    after = invoke(home, monkeypatch, "monitor", "drift", *window)
    assert after["status"] == before["status"]
    assert after["current"]["rows"] == before["current"]["rows"]
    assert after["data_drift"]["features"] == before["data_drift"]["features"]
    assert after["prediction_drift"]["score"] == before["prediction_drift"]["score"]
