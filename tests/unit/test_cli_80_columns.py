"""Every registry table rendered at COLUMNS=80: no cell is cut with an ellipsis, stages and
times stay whole, and the gate results of `registry show` are a table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnops.commands.registry import app
from tests.support.registry import log_candidate, make_registry, model_name_for, shared_sqlite_store

ELLIPSIS = "\u2026"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def run(
    store: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    registry, experiment_id = make_registry(store[0], store[1], model_name=model_name_for(request))
    gates = {
        "policy": "default",
        "passed": True,
        "results": [
            {"rule": "floor:roc_auc", "passed": True, "detail": "test roc_auc = 0.8100 >= 0.7000: ok"},
            {
                "rule": "max_slice_regression:month_to_month:roc_auc",
                "passed": True,
                "skipped": True,
                "detail": "no Production version to compare with: skipped",
            },
        ],
    }
    for seed in (1, 2):  # registered as training does, with the gate report it recorded
        logged = log_candidate(registry.client, experiment_id=experiment_id, seed=seed)
        registry.register(
            run_id=logged.run_id,
            sha256=logged.sha256,
            feature_service="churn_v1",
            metrics={"test_roc_auc": 0.81},
            tags={"trigger": "performance"},
            gate_results=gates,
            actor="tester",
        )
    reason = "a long reason that a reviewer wrote to explain why this version goes to Production now"
    registry.promote(version=1, stage="Staging", reason=reason, actor="alice.the.reviewer@example.com")
    registry.promote(version=1, stage="Production", reason=reason, actor="alice.the.reviewer@example.com")
    registry.promote(version=2, stage="Staging", reason="next", actor="bob")
    registry.promote(version=2, stage="Production", reason="better", actor="bob")
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", store[0])
    monkeypatch.setenv("CHURNOPS_MODEL_NAME", registry.model_name)
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def widest(text: str) -> int:
    """The widest table line (the plain ``key: value`` lines of `show`, e.g. paths, may be longer)."""
    plain = ("sha256: ", "run: ", "artifact: ")
    return max(len(line) for line in text.splitlines() if not line.startswith(plain))


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("show", "1"),
        ("audit",),
        ("search", "--stage", "Archived"),
        ("compare", "1", "2", "--resamples", "50"),
    ],
)
def test_tables_fit_80_columns_without_ellipsis(run: Any, args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert ELLIPSIS not in result.stdout, result.stdout
    assert widest(result.stdout) <= 80, result.stdout


def test_list_keeps_stage_and_time_whole_and_show_has_a_gate_table(run: Any) -> None:
    listed = run("list").stdout
    assert "Production" in listed and "Archived" in listed
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", listed)
    shown = run("show", "1").stdout
    assert "Quality gates at registration (default): passed" in shown
    assert "floor:roc_auc" in shown and "pass" in shown and "skipped" in shown
    assert '"results"' not in shown  # not a JSON dump
