"""`churnops registry ...` end to end on a real SQLite MLflow store: JSON output, errors, compare."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnops.commands.registry import app
from registry_ext import ModelRegistry
from tests.support.registry import make_registry, model_name_for, register_candidate, shared_sqlite_store

VERSION_KEYS = {"name", "version", "stage", "run_id", "sha256", "tags"}
AUDIT_KEYS = {"version", "from_stage", "to_stage", "actor", "reason", "trigger", "time"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def cli(
    store: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[ModelRegistry, str, Any]:
    """A registry with two registered versions, and a runner of the CLI against the same store."""
    registry, experiment_id = make_registry(store[0], store[1], model_name=model_name_for(request))
    register_candidate(registry, experiment_id=experiment_id, seed=1)
    register_candidate(registry, experiment_id=experiment_id, seed=2, tags={"trigger": "drift"})
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", store[0])
    monkeypatch.setenv("CHURNOPS_MODEL_NAME", registry.model_name)
    monkeypatch.setenv("CHURNOPS_ACTOR", "cli-user")
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no wrapping in assertions
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args))

    return registry, experiment_id, run


def one_json(output: str) -> Any:
    return json.loads(output)  # fails unless stdout is exactly one JSON document


def test_promote_show_list_search_audit_print_one_json_document(cli: tuple[ModelRegistry, str, Any]) -> None:
    registry, _, run = cli
    result = run("promote", "1", "--stage", "Staging", "--reason", "smoke tests passed", "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result.stdout)
    assert doc["version"]["stage"] == "Staging"
    assert doc["transition"]["actor"] == "cli-user"  # from CHURNOPS_ACTOR
    run("promote", "1", "--stage", "Production", "--reason", "go", "--actor", "alice")
    run("promote", "2", "--stage", "Staging", "--reason", "drift retrain", "--trigger", "drift")

    shown = one_json(run("show", "1", "--json").stdout)
    assert shown.keys() >= VERSION_KEYS and shown["stage"] == "Production"
    assert [t["to_stage"] for t in shown["transitions"]] == ["None", "Staging", "Production"]

    listed = one_json(run("list", "--json").stdout)
    assert [v["version"] for v in listed] == [2, 1]
    assert all(v.keys() >= VERSION_KEYS for v in listed)

    found = one_json(run("search", "--name", registry.model_name, "--tag", "trigger=drift", "--json").stdout)
    assert [(v["version"], v["stage"]) for v in found] == [(2, "Staging")]
    found = one_json(run("search", "--name", registry.model_name, "--stage", "production", "--json").stdout)
    assert [v["version"] for v in found] == [1]

    entries = one_json(run("audit", "--json").stdout)
    assert all(e.keys() >= AUDIT_KEYS for e in entries)
    assert [(e["version"], e["to_stage"], e["actor"]) for e in entries][-2:] == [
        (1, "Production", "alice"),
        (2, "Staging", "cli-user"),
    ]
    assert len(one_json(run("audit", "--version", "2", "--json").stdout)) == 2


def test_rollback_and_human_output(cli: tuple[ModelRegistry, str, Any]) -> None:
    _registry, _, run = cli
    for version in ("1", "2"):
        run("promote", version, "--stage", "Staging", "--reason", "s")
        run("promote", version, "--stage", "Production", "--reason", "p")
    result = run("rollback", "--reason", "v2 latency regression", "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result.stdout)
    assert (doc["version"]["version"], doc["version"]["stage"]) == (1, "Production")
    assert doc["displaced"][0]["reason"] == "rolled back to version 1: v2 latency regression"
    table = run("audit")
    assert table.exit_code == 0 and "rolled back" in table.stdout
    assert run("list").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "7", "--stage", "Staging", "--reason", "x"], "has no version 7"),
        (["promote", "1", "--stage", "Live", "--reason", "x"], "invalid stage 'Live'"),
        (["promote", "1", "--stage", "Staging", "--reason", ""], "reason must not be empty"),
        (["show", "9"], "has no version 9"),
        (["search", "--tag", "oops"], "--tag expects key=value"),
        (["compare", "1"], "at least two versions"),
    ],
)
def test_errors_exit_2_with_a_clear_message(
    cli: tuple[ModelRegistry, str, Any], args: list[str], message: str
) -> None:
    _registry, _, run = cli
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    as_json = run(*args, "--json")
    assert as_json.exit_code == 2
    assert message in one_json(as_json.stdout)["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "1", "--stage", "Production", "--reason", "x"], "promote it to Staging before"),
        (["rollback", "--reason", "x"], "no Production version"),
        (["rollback", "--to", "1", "--reason", "x"], "not Archived"),
    ],
)
def test_refusals_by_the_registry_state_exit_3(
    cli: tuple[ModelRegistry, str, Any], args: list[str], message: str
) -> None:
    _registry, _, run = cli
    result = run(*args)
    assert result.exit_code == 3, result.output
    assert message in result.stderr and "Traceback" not in result.output
    as_json = run(*args, "--json")
    assert as_json.exit_code == 3 and message in one_json(as_json.stdout)["error"]


def test_promoting_a_tampered_version_is_refused_with_exit_3(cli: tuple[ModelRegistry, str, Any]) -> None:
    from pathlib import Path

    registry, _, run = cli
    weights = Path(registry.get(2).artifact_uri) / "model.skops"
    original = weights.read_bytes()
    weights.write_bytes(original + b"\0")
    try:
        result = run("promote", "2", "--stage", "Staging", "--reason", "x")
        assert result.exit_code == 3, result.output
        assert (
            "refusing to move version 2 to Staging" in result.stderr
            and "changed file 'model.skops'" in result.stderr
        )
        assert one_json(run("promote", "2", "--stage", "Staging", "--reason", "x", "--json").stdout)["error"]
    finally:
        weights.write_bytes(original)
    assert run("promote", "2", "--stage", "Staging", "--reason", "x").exit_code == 0


def test_promoting_an_archived_version_is_refused(cli: tuple[ModelRegistry, str, Any]) -> None:
    registry, _, run = cli
    run("promote", "1", "--stage", "Archived", "--reason", "bad data window")
    result = run("promote", "1", "--stage", "Staging", "--reason", "retry")
    assert result.exit_code == 3 and "Archived and cannot be promoted" in result.stderr
    assert "rollback --to 1" in result.stderr
    assert registry.get(1).stage.value == "Archived"


def test_reads_report_out_of_band_alias_moves_and_reconcile_records_them(
    cli: tuple[ModelRegistry, str, Any],
) -> None:
    registry, _, run = cli
    registry.client.set_registered_model_alias(registry.model_name, "staging", "2")
    before = one_json(run("audit", "--json").stdout)
    for args in (("list",), ("show", "2"), ("audit",), ("search", "--name", registry.model_name)):
        result = run(*args, "--json")
        assert result.exit_code == 0, result.output
        assert "alias 'staging' points at 2 while the registry says nothing" in result.stderr
    assert one_json(run("audit", "--json").stdout) == before  # reads wrote nothing
    stages = {v["version"]: v["stage"] for v in one_json(run("list", "--json").stdout)}
    assert stages == {2: "None", 1: "None"}
    result = run("reconcile", "--json")
    assert result.exit_code == 0, result.output
    assert "reconciled: version 2 None -> Staging" in result.stderr
    assert one_json(result.stdout)["mismatches"] == {}
    stages = {v["version"]: v["stage"] for v in one_json(run("list", "--json").stdout)}
    assert stages == {2: "Staging", 1: "None"}
    (entry,) = [e for e in one_json(run("audit", "--json").stdout) if e["actor"] == "mlflow"]
    assert (entry["version"], entry["from_stage"], entry["to_stage"]) == (2, "None", "Staging")


def test_compare_leads_with_the_verdict_on_the_same_rows_and_writes_self_contained_html(
    cli: tuple[ModelRegistry, str, Any], tmp_path: Path
) -> None:
    _registry, _, run = cli
    run("promote", "1", "--stage", "Staging", "--reason", "s")
    report = tmp_path / "reports" / "compare.html"
    result = run("compare", "1", "2", "--html", str(report), "--json", "--resamples", "200")
    assert result.exit_code == 0, result.output
    doc = one_json(result.stdout)
    assert doc["stages"] == {"1": "Staging", "2": "None"}
    assert doc["holdout"]["version"] == 2 and doc["holdout"]["rows"] == 150
    assert doc["baseline"] == 1  # no Production among them: the first asked for
    auc = doc["metrics"]["holdout_roc_auc"]
    assert all(0.5 < a <= 1 for a in auc)
    assert doc["deltas"]["holdout_roc_auc"] == [0.0, pytest.approx(auc[1] - auc[0])]
    assert doc["deltas"]["test_roc_auc"] == [0.0, pytest.approx(0.001)]
    headline = doc["headline"]
    assert headline["rows"] == 150 and headline["resamples"] == 200
    roc = headline["values"]["2"]["roc_auc"]
    assert roc["low"] <= roc["estimate"] <= roc["high"]
    assert roc["estimate"] == pytest.approx(auc[1])
    delta = headline["deltas"]["2"]["roc_auc"]
    assert delta["estimate"] == pytest.approx(auc[1] - auc[0])
    assert set(headline["values"]["1"]) == {"roc_auc", "pr_auc", "brier", "top_decile_lift"}
    (verdict,) = doc["verdicts"]
    assert verdict["version"] == 2 and verdict["outcome"] in {"better", "worse", "no clear difference"}
    assert "on the same 150 rows" in verdict["text"]
    assert [s["name"] for s in doc["slices"]] == ["month_to_month"]  # the columns the rows have
    assert doc["params"]["seed"] == ["1", "2"]
    assert doc["data_windows"]["train_start"] == ["2025-01-01", "2025-01-01"]
    assert doc["features"]["1"] == ["account:tenure", "account:monthly_charges", "account:contract"]
    assert doc["gate_results"]["2"]["passed"] is True
    assert set(doc["curves"]) == {"1", "2"}
    assert doc["curves"]["1"]["roc"]["fpr"][0] == 0.0
    assert set(doc["curves"]["1"]) >= {"roc", "pr", "calibration", "gain"}

    text = report.read_text()
    assert doc["html"] == str(report)
    assert len(text) > 1_000_000  # plotly.js is inlined
    assert not re.search(r"<script[^>]*\bsrc=", text)  # no external script: works offline
    assert text.index("class='verdict") < text.index("Headline metrics") < text.index("Curves")
    assert text.index("Curves") < text.index("<details>")
    assert "v1 (Staging) (AUC" in text and "Calibration" in text and "Cumulative gain" in text
    tables = run("compare", "1", "2", "--resamples", "200")
    assert tables.exit_code == 0, tables.output
    out = tables.stdout
    assert out.index(verdict["outcome"]) < out.index("ROC-AUC") < out.index("top-decile lift")
    assert "Params" not in out and "--details" in out
    detailed = run("compare", "1", "2", "--resamples", "50", "--details").stdout
    assert "Params" in detailed and "own test set" in detailed
