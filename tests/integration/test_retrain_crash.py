"""Crash consistency of `churnops retrain run` (issue 17): the process is killed at each commit
point of a retrain (SIGKILL while its training run is RUNNING, and ``CHURNOPS_CRASH_AT`` =
claimed / trained / registered / promoted, an ``os._exit(137)`` test hook), and after each kill:
one Production version, the decision in the state of its last recorded step, the next command
names or takes the one step that finishes it, and the decision is finished exactly once (one
version, one promotion), with the killed MLflow run marked FAILED."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.decisions import CRASH_ENV, CRASH_EXIT, DecisionState
from churnops.contracts.mlflow_keys import DECISION_TAG
from churnops.contracts.policy_files import ShippedPolicy
from churnops.contracts.stages import Stage
from registry_ext.decisions import list_decisions
from tests.support.policies import write_over_shipped
from tests.support.retrain_env import RetrainEnv, make_retrain_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICY = "name: crash\nschedule: null\ncooldown_hours: 0\npromote_to: Production\n"
GATES = (
    "name: lenient\nfloors: {roc_auc: 0.5}\nceilings: {}\nslices: {}\n"
    "relative: {metric: roc_auc, min_improvement: -1.0, max_slice_regression: {}}\n"
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RetrainEnv]:
    for var in (
        "CHURNOPS_MLFLOW_TRACKING_URI",
        "CHURNOPS_ARTIFACT_ROOT",
        "CHURNOPS_REDIS_URL",
        "CHURNOPS_FEAST_REGISTRY_URL",
        "CHURNOPS_GATE_POLICY",
        "CHURNOPS_RETRAIN_POLICY",
        CRASH_ENV,
    ):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    monkeypatch.setenv("CHURNOPS_ACTOR", "crash-tester")
    write_over_shipped(tmp_path / "policy.yaml", ShippedPolicy.RETRAIN, POLICY)
    write_over_shipped(tmp_path / "gates.yaml", ShippedPolicy.GATES, GATES)
    built = make_retrain_env(home)
    yield built
    built.close()


def _command(env: RetrainEnv, tmp_path: Path, *extra: str) -> list[str]:
    return [
        str(Path(sys.executable).with_name("churnops")),
        "retrain",
        "run",
        "--json",
        "--policy",
        str(tmp_path / "policy.yaml"),
        "--gate-policy",
        str(tmp_path / "gates.yaml"),
        "--now",
        env.now.isoformat(),
        "--start",
        env.drift_from.isoformat(),
        *extra,
    ]


def _run(command: list[str], *, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if crash is not None:
        environment[CRASH_ENV] = crash
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900, check=False)


def _cli(command: list[str]) -> tuple[int, str]:
    """A command without a crash hook, in process (the subprocesses pay every import again)."""
    result = CliRunner().invoke(app, command[1:])
    return result.exit_code, result.stdout


def _decision(env: RetrainEnv, decision_id: int) -> DecisionState:
    (record,) = [
        d for d in list_decisions(env.registry.engine, name=env.settings.model_name) if d.id == decision_id
    ]
    return record.state


def _versions_of(env: RetrainEnv, decision_id: int) -> list[int]:
    return [r.version for r in env.registry.all_versions() if r.tags.get(DECISION_TAG) == str(decision_id)]


def _one_production(env: RetrainEnv) -> int:
    held = [r.version for r in env.registry.all_versions() if r.stage == Stage.PRODUCTION]
    assert len(held) == 1, held
    assert env.registry.alias_mismatches() == {}
    return held[0]


def _running_retrain_run(env: RetrainEnv) -> str | None:
    client = env.registry.client
    experiments = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'"):
        if DECISION_TAG in run.data.tags:
            return str(run.info.run_id)
    return None


@pytest.mark.timeout(2400)  # five retrain processes (each imports Feast and MLflow) on a loaded 2-core box
def test_a_retrain_killed_at_each_commit_point_resumes_and_finishes_once(
    env: RetrainEnv, tmp_path: Path
) -> None:
    resume = _command(env, tmp_path)
    forced = _command(env, tmp_path, "--trigger", "manual")

    # killed mid-training: SIGKILL at a barrier (its MLflow run is RUNNING) -> claimed
    process = subprocess.Popen(
        forced,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 900
    while (killed_run := _running_retrain_run(env)) is None:
        assert process.poll() is None, "the retrain ended before the barrier"
        assert time.monotonic() < deadline, "the retrain never started its training run"
        time.sleep(0.2)
    process.kill()
    assert process.wait(timeout=60) == -9
    (decision,) = [d.id for d in list_decisions(env.registry.engine, name=env.settings.model_name) if d.fired]
    assert _decision(env, decision) == DecisionState.CLAIMED
    assert _one_production(env) == env.old_version

    # a forced run is refused while it is pending, naming the command that finishes it
    code, out = _cli(forced)
    assert code == 3, out
    assert f"churnops retrain run --decision {decision}" in json.loads(out)["error"]

    # resumed (trains again), killed right after recording "trained"; the killed run is FAILED
    assert _run(resume, crash="trained").returncode == CRASH_EXIT
    assert env.registry.client.get_run(killed_run).info.status == "FAILED"
    assert _decision(env, decision) == DecisionState.TRAINED and _versions_of(env, decision) == []

    # resumed from "trained": registers, killed before recording it
    assert _run(resume, crash="registered").returncode == CRASH_EXIT
    assert _decision(env, decision) == DecisionState.TRAINED
    (version,) = _versions_of(env, decision)
    assert env.registry.get(version).stage == Stage.NONE and _one_production(env) == env.old_version

    # resumed: adopts that version (no second registration), promotes, killed before recording it
    assert _run(resume, crash="promoted").returncode == CRASH_EXIT
    assert _decision(env, decision) == DecisionState.REGISTERED
    assert _versions_of(env, decision) == [version] and _one_production(env) == version

    # resumed from "registered": nothing left to move, the decision is finished
    code, out = _cli(_command(env, tmp_path, "--decision", str(decision)))
    assert code == 0, out
    doc = json.loads(out)
    assert doc["state"] == "promoted" and doc["resumed_from"] == "registered" and doc["version"] == version
    assert _versions_of(env, decision) == [version] and _one_production(env) == version
    (record,) = [
        d for d in list_decisions(env.registry.engine, name=env.settings.model_name) if d.id == decision
    ]
    assert [t.to_state.value for t in record.transitions] == ["claimed", "trained", "registered", "promoted"]
    tokens = [t.lease_token for t in record.transitions]
    assert tokens == sorted(tokens) and len(set(tokens)) == 4  # each step by the run that held the lease
    assert [a.to_stage for a in env.registry.audit(version=version)] == [
        Stage.NONE,
        Stage.STAGING,
        Stage.PRODUCTION,
    ]

    code, out = _cli(_command(env, tmp_path, "--decision", str(decision)))
    assert code == 3 and "already acted on" in json.loads(out)["error"]
    code, out = _cli(resume)
    assert code == 3 and "is waiting" in json.loads(out)["error"]

    # killed right after the claim: pending, and `retrain check` names the command
    assert _run(forced, crash="claimed").returncode == CRASH_EXIT
    claimed = max(d.id for d in list_decisions(env.registry.engine, name=env.settings.model_name))
    assert _decision(env, claimed) == DecisionState.CLAIMED
    code, out = _cli(
        [
            resume[0],
            "retrain",
            "check",
            "--policy",
            str(tmp_path / "policy.yaml"),
            "--now",
            env.now.isoformat(),
        ]
    )
    assert code == 0, out
    assert f"churnops retrain run --decision {claimed}" in out
    assert _one_production(env) == version
