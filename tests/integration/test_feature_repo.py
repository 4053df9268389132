"""`feast apply` / `feast materialize` in feature_repo/ work with no environment, and the CLI's
features commands drive the same repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.data.generate import generate_churn_data, write_generated
from churnops.settings import Settings
from churnops.wiring import feature_store

pytestmark = pytest.mark.integration
FEAST = str(Path(sys.executable).with_name("feast"))
FEATURE_REPO = Path(__file__).resolve().parents[2] / "feature_repo"


@pytest.mark.slow  # runs the feast CLI in subprocesses on a fresh checkout (about 75 s here)
def test_feast_apply_and_materialize_in_a_fresh_checkout(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(FEATURE_REPO, project / "feature_repo", ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".churnops" / "feast").mkdir(parents=True)  # committed as .gitkeep in the repo
    data = generate_churn_data(customers=200, months=3, seed=5)
    write_generated(data=data, sources_dir=project / ".churnops" / "sources")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURNOPS_", "MLFLOW_"))}
    run = subprocess.run(
        [FEAST, "apply"], cwd=project / "feature_repo", env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "churn_v1" in run.stdout
    # Feast's false warning on the glob sources (DuckDB reads them fine) is not printed.
    assert "FileSource path does not exist" not in run.stdout + run.stderr
    end = data.last_snapshot.strftime("%Y-%m-%dT%H:%M:%S")
    run = subprocess.run(
        [FEAST, "materialize", "2023-01-01T00:00:00", end],
        cwd=project / "feature_repo",
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # What feast apply registered is what the CLI's store sees under the same home.
    store = feature_store(Settings(home=project / ".churnops", _env_file=None))  # type: ignore[call-arg]
    service = store.get_feature_service("churn_v1")
    assert {p.name for p in service.feature_view_projections} == {"profile", "account", "services"}
    last = data.frame[data.frame["event_timestamp"] == data.last_snapshot].iloc[0]
    online = store.get_online_features(
        features=service, entity_rows=[{"customer_id": last["customer_id"]}]
    ).to_dict()
    assert online["tenure"] == [last["tenure"]]
    # Another home would split Feast's registry (the YAML's) from the sources: refused, with the fix.
    other = {**env, "CHURNOPS_HOME": str(tmp_path / "elsewhere")}
    run = subprocess.run(
        [FEAST, "apply"], cwd=project / "feature_repo", env=other, capture_output=True, text=True, timeout=240
    )
    assert run.returncode != 0
    assert "churnops features apply" in run.stdout + run.stderr


def test_features_cli_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    runner = CliRunner()
    result = runner.invoke(app, ["features", "training-set", "--json"])
    assert result.exit_code == 2
    assert "churnops data generate" in result.output  # says how to fix it
    result = runner.invoke(app, ["data", "generate", "--customers", "300", "--months", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["features", "apply"]).exit_code == 0
    out = tmp_path / "ts.parquet"
    result = runner.invoke(app, ["features", "training-set", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    frame = pd.read_parquet(out)
    assert summary["rows_in"] == summary["rows_out"] == len(frame)
    labels = pd.read_parquet(home / "sources" / "labels")
    assert len(frame) == len(labels)
    assert int(frame["churned"].sum()) == int(labels["churned"].sum()) == summary["positives"]
    result = runner.invoke(app, ["features", "training-set", "--end", "2024-02-01"])
    assert result.exit_code == 2
    assert "offset" in result.output
    refused = runner.invoke(app, ["features", "materialize", "--writer", "direct"])
    assert refused.exit_code == 2  # the direct writer is for Redis; this home is on SQLite
    assert "Redis" in refused.output
    done = runner.invoke(app, ["features", "materialize", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["views"]["account"]["writer"] == "feast"
    some = labels.sort_values("event_timestamp").iloc[-1]["customer_id"]
    result = runner.invoke(app, ["features", "online", some, "NOPE-00000", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    # The generated snapshots are from 2024: older than the account TTL today, so stale.
    assert [r["status"] for r in rows] == ["stale_features", "unknown_customer"]
    assert rows[0]["features"]["tenure"] is not None
