"""Concurrent writers on one embedded home (issue 17.8): `churnops train` runs at once on one
SQLite MLflow store (which collided on MLflow's datasets table: `UNIQUE constraint failed:
datasets...`) and `monitor drift` runs at once on one Evidently workspace (JSON files) all
succeed, leaving distinct runs and a readable workspace with one project.

Real processes (the `churnops` console script), a tiny generated home, SQLite everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.policy_files import ShippedPolicy
from churnops.settings import Settings
from tests.support.policies import write_over_shipped

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Three trains and two reports at once: real processes racing on one home (the race itself is made
# certain, 8 writers on a barrier, in tests/integration/test_concurrent_writers.py).
TRAINS = 3
DRIFTS = 2
PERMISSIVE_GATES = """\
name: permissive
floors:
  roc_auc: 0.0
ceilings:
  brier: 1.0
slices: {}
relative: {min_improvement: 0.0, max_slice_regression: {}}
min_slice_rows: 1
"""
SMALL_DRIFT_POLICY = """\
name: small
min_current_rows: 50
min_reference_rows: 50
concept_drift:
  min_labelled_rows: 50
  min_holdout_rows: 50
"""


def _cli(*argv: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    doc: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return doc


def _together(argvs: list[list[str]], *, env: dict[str, str], cwd: Path) -> list[tuple[int, str, str]]:
    """Start every command at once, wait for all; (exit code, stdout, stderr) each."""
    procs = [
        subprocess.Popen(
            [str(Path(sys.executable).with_name("churnops")), *argv],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=1500)
        out.append((proc.returncode, stdout, stderr))
    return out


@pytest.mark.timeout(1800)
def test_concurrent_trains_and_drift_reports_on_one_home_all_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    gates = tmp_path / "gates.yaml"
    write_over_shipped(gates, ShippedPolicy.GATES, PERMISSIVE_GATES)
    drift_policy = tmp_path / "drift.yaml"  # a tiny home: reports with scores, not insufficient_data
    write_over_shipped(drift_policy, ShippedPolicy.DRIFT, SMALL_DRIFT_POLICY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    monkeypatch.setenv("CHURNOPS_GATE_POLICY", str(gates))
    generated = _cli("data", "generate", "--customers", "400", "--months", "4")
    _cli("features", "apply")
    env = {
        **os.environ,  # the session's signing keys (tests/conftest.py) included
        "CHURNOPS_HOME": str(home),
        "CHURNOPS_GATE_POLICY": str(gates),
        "CHURNOPS_DRIFT_POLICY": str(drift_policy),
    }

    trained = _together([["train", "--json"]] * TRAINS, env=env, cwd=tmp_path)
    for code, stdout, stderr in trained:
        assert code == 0, f"train exited {code}: {stdout[-2000:]} {stderr[-4000:]}"
        assert "IntegrityError" not in stderr and "UNIQUE constraint" not in stdout
    docs = [json.loads(stdout) for _, stdout, _ in trained]
    runs = {doc["run_id"] for doc in docs}
    assert len(runs) == TRAINS  # distinct runs

    from churnops.wiring import mlflow_client, open_registry

    settings = Settings(home=home, _env_file=None)
    client = mlflow_client(settings)
    for run_id in runs:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        # Both datasets (the holdout and the entity frame) linked to every run, shared rows reused.
        assert run.inputs is not None
        assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"holdout", "entity_df"}
    versions = sorted(int(doc["version"]) for doc in docs if doc.get("version") is not None)
    assert versions == list(range(1, TRAINS + 1))  # one registered version per run, none lost

    with open_registry(settings, write=True) as registry:
        registry.promote(version=versions[-1], stage="Staging", reason="test", actor="tests")
        registry.promote(version=versions[-1], stage="Production", reason="test", actor="tests")
    last = generated["last_snapshot"]
    _cli("score", "--as-of", last)

    drifted = _together(
        [["monitor", "drift", "--json", "--start", last, "--end", last.replace("T00:00:00", "T23:59:59")]]
        * DRIFTS,
        env=env,
        cwd=tmp_path,
    )
    for code, stdout, stderr in drifted:
        assert code == 0, f"monitor drift exited {code}: {stdout[-2000:]} {stderr[-4000:]}"
        assert json.loads(stdout)["status"] != "insufficient_data", stdout[:2000]
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(home / "evidently"))
    projects = workspace.search_project(settings.model_name)
    assert len(projects) == 1, [p.id for p in projects]  # not one project per racing report
    snapshots = workspace.list_runs(projects[0].id)
    assert len(snapshots) >= DRIFTS
