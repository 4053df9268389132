"""`churnops train` from the command line: one JSON object, or a clear error with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.policy_files import ShippedPolicy
from churnops.data.generate import generate_churn_data, write_generated
from churnops.features.store import apply
from churnops.settings import Settings
from churnops.wiring import feast_definitions, feature_store
from tests.support.feast import empty_sources
from tests.support.policies import write_over_shipped

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    for var in (
        "CHURNOPS_MLFLOW_TRACKING_URI",
        "CHURNOPS_ARTIFACT_ROOT",
        "CHURNOPS_REDIS_URL",
        "CHURNOPS_FEAST_REGISTRY_URL",
        "CHURNOPS_GATE_POLICY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    monkeypatch.setenv("CHURNOPS_ACTOR", "cli-tester")
    monkeypatch.chdir(tmp_path)  # no stray .env
    return home


def test_train_json_registers_a_version_then_a_strict_policy_refuses(home: Path, tmp_path: Path) -> None:
    settings = Settings()
    write_generated(
        data=generate_churn_data(customers=2000, months=6, seed=11), sources_dir=settings.sources_dir
    )
    apply(store=feature_store(settings), defs=feast_definitions(settings))
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["gates"]["passed"] is True, [
        r for r in doc["gates"]["results"] if not r["passed"]
    ]
    assert doc["feature_service"] == "churn_v1"
    assert doc["split"]["strategy"] == "time"
    assert doc["test"]["overall"]["roc_auc"] > 0.7

    strict = tmp_path / "strict.yaml"
    write_over_shipped(strict, ShippedPolicy.GATES, "floors: {roc_auc: 0.999}\n")
    result = runner.invoke(app, ["train", "--gate-policy", str(strict), "--trigger", "drift"])
    assert result.exit_code == 3, result.output  # gates failed: nothing registered
    assert "floor:roc_auc" in result.stdout and "FAIL" in result.stdout
    assert "no new version: gate(s) failed: floor:roc_auc" in result.stdout

    # a training window: only labels from --start on (the entity frame is cut before the split)
    result = runner.invoke(app, ["train", "--json", "--start", "2024-03-01T00:00:00Z"])
    assert result.exit_code in (0, 3), result.output
    windows = json.loads(result.stdout)["split"]["windows"]
    assert min(w["start"] for w in windows.values()) >= "2024-03-01T00:00:00+00:00"


def test_train_without_data_is_a_clear_error(home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--json"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    # On an empty home: which home, and what to run first (churnops.commands.home_guard).
    assert str(home) in doc["error"] and "run `churnops data generate`" in doc["error"]
    assert not home.exists()
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trigger", "whim"], "--trigger: invalid trigger 'whim'"),
        (["--gate-policy", "missing.yaml"], "missing.yaml: cannot be read"),
        (["--start", "yesterday"], "--start 'yesterday' is not an ISO time"),
        (["--start", "2025-02-01T00:00:00Z", "--end", "2025-01-01T00:00:00Z"], "must be before --end"),
    ],
)
def test_bad_options_are_clear_errors(home: Path, args: list[str], needle: str) -> None:
    # Sources and an applied repo (no rows), so the options are the only problem.
    settings = Settings()
    empty_sources(settings)
    apply(store=feature_store(settings), defs=feast_definitions(settings))
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2
    assert needle in result.stderr
    assert "Traceback" not in result.output
