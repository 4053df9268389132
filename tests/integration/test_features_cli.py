"""`churnops data ingest|generate` and `features apply|materialize|online` as a user sees them:
the warning when data is too old to be served today (issue 10.1), `--json` on apply and
materialize (10.11), and `features online` one customer per table within 80 columns (10.5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.features.freshness import freshness, recent_start, today_as_of
from tests.support.telco_csv import telco_table, write_csv

pytestmark = pytest.mark.integration

OLD = "2024-06-30T00:00:00Z"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feast_project: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_PROJECT", feast_project)
    monkeypatch.setenv("COLUMNS", "80")
    return tmp_path / "home"


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    table = telco_table(customers=40, seed=3)
    return write_csv(path=tmp_path / "telco.csv", header=table.header, rows=table.rows)


def run(*argv: str) -> Any:
    result = CliRunner().invoke(app, list(argv))
    assert result.exit_code == 0, result.output
    return result


def test_old_snapshot_warns_with_the_as_of_to_use(home: Path, csv_path: Path) -> None:
    result = run("data", "ingest", str(csv_path), "--as-of", OLD, "--json")
    payload = json.loads(result.stdout)
    assert payload["freshness"]["servable"] is False
    assert payload["freshness"]["stale_views"] == ["account", "profile", "services"]
    today = today_as_of().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"--as-of {today}" in payload["warning"]  # the as-of that serves it now
    assert f"churnops score --as-of {OLD}" in payload["warning"]  # or a backfill at its own time
    text = run("data", "ingest", str(csv_path), "--as-of", OLD)
    assert "stale_features" in text.stderr and today in text.stderr

    run("features", "apply")
    result = run("features", "materialize", "--json")
    payload = json.loads(result.stdout)
    assert payload["end"].startswith("2024-06-30") and payload["freshness"]["servable"] is False
    assert "older than the TTL" in run("features", "materialize").stderr


def test_todays_snapshot_is_quiet_and_json_everywhere(home: Path, csv_path: Path) -> None:
    today = today_as_of().strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = json.loads(run("data", "ingest", str(csv_path), "--as-of", today, "--json").stdout)
    assert payload["warning"] is None and payload["freshness"]["servable"] is True

    applied = json.loads(run("features", "apply", "--json").stdout)
    assert {"customer", "profile", "account", "services", "churn_v1"} <= set(applied["applied"])
    done = json.loads(run("features", "materialize", "--json").stdout)
    assert done["target"] == "SQLite" and set(done["views"]) == {"profile", "account", "services"}
    assert all(v["removed"] == 0 and v["writer"] == "feast" for v in done["views"].values())
    assert done["freshness"]["servable"] is True
    assert "older than the TTL" not in run("features", "materialize").stderr

    ids = [row[0] for row in telco_table(customers=40, seed=3).rows[:2]]
    text = run("features", "online", *ids, "NOBODY").stdout
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert f"{ids[0]}: ok" in text and f"{ids[1]}: ok" in text and "NOBODY: unknown_customer" in text
    assert sum(line.startswith("│ monthly_charges ") for line in lines) == 2  # features down the side


def test_generate_default_start_warns_with_a_recent_start(home: Path) -> None:
    payload = json.loads(run("data", "generate", "--customers", "50", "--months", "3", "--json").stdout)
    assert f"--months 3 --start {recent_start(months=3)}" in payload["warning"]
    start = recent_start(months=3).isoformat()
    payload = json.loads(
        run("data", "generate", "--customers", "50", "--months", "3", "--start", start, "--json").stdout
    )
    assert payload["warning"] is None


def test_freshness_bounds() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    ttl = {"account": timedelta(days=45), "profile": timedelta(days=400)}
    assert freshness(data_time=now - timedelta(days=45), ttl=ttl, now=now).servable  # at the TTL: ok
    late = freshness(data_time=now - timedelta(days=45, microseconds=1), ttl=ttl, now=now)
    assert late.stale_views == ("account",) and late.stale_from == now - timedelta(microseconds=1)
    assert recent_start(months=1, now=now).isoformat() == "2026-12-01"
    assert recent_start(months=12, now=now).isoformat() == "2026-01-01"
    assert recent_start(months=13, now=now).isoformat() == "2025-12-01"
    with pytest.raises(ValueError, match="tz-aware"):
        freshness(data_time=datetime(2026, 1, 1), ttl=ttl)
