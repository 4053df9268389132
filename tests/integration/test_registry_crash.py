"""Crash consistency of the registry: kill the writer at every commit point, then check.

For register, promote, rollback and rollback --to, a real process is killed (``os._exit(137)``
through the ``CHURNOPS_CRASH_AT`` test hook, which is what ``kill -9`` leaves) at each commit
point: before the intent, after the intent, between two alias moves, after the alias move,
after the table write. Then, on SQLite and on a real PostgreSQL-backed MLflow store:

- one Production version at most, whatever happened;
- no hidden version: every MLflow version is in the ``models`` table or listed as unregistered;
- a read command names the one command that recovers (reconcile, or adopt);
- after that command: aliases == table, no pending intent, the audit complete with the real
  actor and reason (never ``mlflow``), and ``reconcile`` agrees (exit 0) and says so.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from churnops.commands.registry import app
from churnops.contracts.crash_points import CRASH_ENV, CRASH_EXIT_CODE
from registry_ext import ModelRegistry, Stage
from tests.conftest import POSTGRES_ADMIN_URL, POSTGRES_HOW, service_missing
from tests.support.registry import (
    make_registry,
    model_name_for,
    register_candidate,
    shared_postgres_store,
    shared_sqlite_store,
)
from tests.support.registry_crash import ACTOR, PRELOAD, REASON, killed_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

STAGE_POINTS = [
    "registry.before_intent",
    "registry.after_intent",
    "registry.between_aliases",
    "registry.after_alias",
    "registry.after_table",
]
FINISHED_POINTS = {"registry.between_aliases", "registry.after_alias", "registry.after_table"}
CASES = (
    [
        ("register", point)
        for point in (
            "registry.register.before_mlflow_version",
            "registry.register.after_mlflow_version",
            "registry.register.after_table",
        )
    ]
    + [("promote", point) for point in STAGE_POINTS]
    + [("rollback", point) for point in STAGE_POINTS if point != "registry.between_aliases"]
    + [("rollback_to", "registry.after_alias")]
)
POSTGRES_CASES = {
    ("register", "registry.register.after_mlflow_version"),
    ("promote", "registry.after_intent"),
    ("promote", "registry.between_aliases"),
    ("promote", "registry.after_alias"),
    ("rollback", "registry.after_alias"),
}
"""Every commit point runs on SQLite; on PostgreSQL (each case ~30 s of a writer's start-up and
two full registrations) the points where the two stores differ: the MLflow version without its
row, an intent committed, and aliases moved without the table write (a transaction per store)."""
STORE_CASES = [("sqlite", op, point) for op, point in CASES] + [
    ("postgres", op, point) for op, point in CASES if (op, point) in POSTGRES_CASES
]


@pytest.fixture(scope="module")
def crash_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if request.param == "sqlite":
        return shared_sqlite_store(tmp_path_factory)
    try:
        return shared_postgres_store(POSTGRES_ADMIN_URL, str(tmp_path_factory.mktemp("pg-artifacts")))
    except sa.exc.OperationalError as error:
        service_missing("PostgreSQL", POSTGRES_HOW, error)
        raise


@pytest.fixture(scope="module")
def processes() -> Any:
    """A forkserver that imported MLflow and registry_ext once: each killed writer is a fresh
    process (no connection or client shared with this one) without paying the imports again."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def kill_at(processes: Any, tracking_uri: str, model: str, op: str, point: str, version: int | None) -> int:
    argv = [tracking_uri, model, op] + ([] if version is None else [str(version)])
    child = processes.Process(target=killed_process, args=(point, argv))
    child.start()
    child.join(timeout=600)
    assert child.exitcode is not None, "the writer did not end"
    assert child.exitcode in (0, CRASH_EXIT_CODE), f"the writer failed with exit code {child.exitcode}"
    return int(child.exitcode)


def test_the_crash_hook_kills_like_kill_9(tmp_path: Path) -> None:
    """The hook exits 137 at once (no finally, no atexit) only at the named point."""
    script = (
        "import atexit, sys\n"
        "from churnops.contracts.crash_points import crash_point\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "crash_point('registry.other')\n"
        "try:\n    crash_point('registry.here')\nfinally:\n    print('finally ran')\n"
    )
    env = {**os.environ, CRASH_ENV: "registry.here", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (CRASH_EXIT_CODE, "")
    env[CRASH_ENV] = "registry.elsewhere"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "atexit ran" in done.stdout


def cli(tracking_uri: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("CHURNOPS_MODEL_NAME", model)
    monkeypatch.setenv("CHURNOPS_ACTOR", "next-operator")
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def check_safe(reg: ModelRegistry) -> None:
    """What must hold even right after the kill, before anything recovers."""
    with reg.engine.connect() as conn:
        production = conn.execute(
            sa.text("SELECT count(*) FROM models WHERE name = :n AND stage = 'Production'"),
            {"n": reg.model_name},
        ).scalar_one()
    assert production <= 1
    in_mlflow = {int(v.version) for v in reg.client.search_model_versions(f"name = '{reg.model_name}'")}
    shown = {r.version for r in reg.all_versions()} | {u.version for u in reg.unregistered()}
    assert in_mlflow <= shown  # no hidden version


def check_recovered(reg: ModelRegistry) -> None:
    check_safe(reg)
    assert reg.alias_mismatches() == {}
    assert reg.intents(pending_only=True) == []
    assert reg.unregistered() == []
    assert {t.actor for t in reg.audit()} <= {"tester", ACTOR, "next-operator"}
    production = [r.version for r in reg.all_versions() if r.stage is Stage.PRODUCTION]
    assert len(production) == 1


@pytest.mark.parametrize(("crash_store", "op", "point"), STORE_CASES, indirect=["crash_store"])
def test_a_writer_killed_at_any_commit_point_leaves_a_recoverable_registry(
    crash_store: tuple[str, str],
    processes: Any,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    op: str,
    point: str,
) -> None:
    tracking_uri, artifacts = crash_store
    reg, experiment_id = make_registry(tracking_uri, artifacts, model_name=model_name_for(request)[-60:])
    try:
        for seed in (1, 2):
            register_candidate(reg, experiment_id=experiment_id, seed=seed)
            reg.promote(version=seed, stage="Staging", reason="stage", actor="tester")
            if op != "promote" or seed == 1:
                reg.promote(version=seed, stage="Production", reason="ship", actor="tester")
        if op == "rollback_to":
            reg.rollback(reason="first rollback", actor="tester")  # v1 Production, v2 Archived
        before = {r.version: r.stage for r in reg.all_versions()}
        audit_before = len(reg.audit())

        version = {"promote": 2, "rollback_to": 2, "register": 3}.get(op)
        code = kill_at(processes, tracking_uri, reg.model_name, op, point, version)
        assert code == CRASH_EXIT_CODE, f"{point} was never reached"
        check_safe(reg)

        run = cli(tracking_uri, reg.model_name, tmp_path, monkeypatch)
        listed = run("list")
        assert listed.exit_code == 0, listed.output
        pending = reg.intents(pending_only=True)
        hidden = [u.version for u in reg.unregistered()]
        if pending or reg.alias_mismatches():
            assert "churnops registry reconcile" in listed.stderr  # the read names the one command
        if hidden:
            assert f"churnops registry adopt {hidden[0]}" in listed.stderr
            refused = run("promote", str(hidden[0]), "--stage", "Staging", "--reason", "x")
            assert refused.exit_code == 3
            reconciled = run("reconcile", "--json")
            assert reconciled.exit_code == 3 and json.loads(reconciled.stdout)["agree"] is False
            adopted = run("adopt", str(hidden[0]), "--reason", "registration was killed")
            assert adopted.exit_code == 0, adopted.output

        reconciled = run("reconcile", "--json")
        assert reconciled.exit_code == 0, reconciled.output
        doc = json.loads(reconciled.stdout)
        assert doc["agree"] is True and doc["mismatches"] == {} and doc["unregistered"] == []
        assert "agree" in run("reconcile").stdout
        check_recovered(reg)

        after = {r.version: r.stage for r in reg.all_versions()}
        new = reg.audit()[audit_before:]
        if op == "register":
            assert (
                after[3] is Stage.NONE
                if point != "registry.register.before_mlflow_version"
                else 3 not in after
            )
            return
        expected_production = {"promote": 2, "rollback": 1, "rollback_to": 2}[op]
        if point in FINISHED_POINTS:
            assert after[expected_production] is Stage.PRODUCTION
            assert {(t.actor, t.trigger) for t in new} == {
                (ACTOR, "drift" if op == "promote" else "performance")
            }
            assert all(REASON in t.reason for t in new)
        else:
            assert after == before and new == []  # reverted: nothing happened
    finally:
        reg.engine.dispose()
