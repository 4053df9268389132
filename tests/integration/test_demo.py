"""`churnops demo` on an empty home, twice, then the printed curl against `churnops serve`.

The first run ends with one pass of the retraining loop on the injected price war: the check
fires on drift, the challenger is gated against Production on the same rows, and it is promoted
(serving's alias moves); with a gate it cannot pass, the run names the gate and Production stays.
Both outcomes are deterministic: the demo's calendar is counted in whole snapshots, so the story
is the same in every month (tests/unit/test_demo_calendar.py runs its decision path for a year).
The run uses the demo's default 5,000 customers: the gates promote only when the lower bound of
the gain's paired-bootstrap interval clears the bar, and with 2,500 customers the challenger's
+0.018 ROC-AUC on the newest month's ~110 churners was within the noise (95% CI -0.0003 to
+0.0365, refused); with 5,000 it is +0.0184 [95% CI +0.0048, +0.0320]."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.settings import Settings
from churnops.wiring import open_registry
from registry_ext.decisions import list_decisions
from tests.support.serving_env import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHURNOPS = str(Path(sys.executable).with_name("churnops"))
NOW = "2026-12-07T12:00:00Z"
"""The demo's clock, pinned (CHURNOPS_NOW): the same story whatever the month, and `churnops
serve` reads the demo's features as fresh as of the same time."""
ARGS = ["demo", "--customers", "5000", "--months", "8"]


@pytest.mark.timeout(600)  # two demo runs and a server: 277 s measured on a loaded 2-core machine
def test_demo_is_idempotent_and_its_curl_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    monkeypatch.setenv("CHURNOPS_NOW", NOW)
    # No key setup at all: the demo's first registration creates <home>/keys (the served
    # subprocess below sees only CHURNOPS_HOME and must trust what the demo signed).
    monkeypatch.delenv("CHURNOPS_SIGNING_KEY_FILE")
    monkeypatch.delenv("CHURNOPS_TRUSTED_KEYS_FILE")
    runner = CliRunner()
    args = ARGS
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "Production" in first.output
    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    with open_registry(settings, write=False) as registry:
        after_first = registry.all_versions()
        decisions = list_decisions(registry.engine, name=settings.model_name)
    # the loop: one decision, fired by drift, acted on: the challenger is promoted
    assert [(d.fired, d.trigger and d.trigger.value) for d in decisions] == [(True, "drift")]
    text = " ".join(first.output.split())  # rich wraps lines at the terminal's 80 columns
    assert "version 2 is in Production (decision promoted)" in text, text
    assert len(after_first) == 2 and "serving follows the production alias: now v2" in text
    retrained = max(after_first, key=lambda record: record.version)  # all_versions: newest first
    assert retrained.tags["churnops.trigger"] == "drift"
    assert retrained.tags["churnops.decision_id"] == str(decisions[0].id)
    # the challenger learned whole snapshots: the four before the newest (2026-12-01)
    assert "on labels 2026-08-01 .. 2026-11-01" in text, text

    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    with open_registry(settings, write=False) as registry:
        versions = registry.all_versions()
        production = registry.production()
    # The same data again gives the same models: the default gates want a real improvement.
    assert "no new version" in second.output
    assert len(versions) == len(after_first)
    assert production is not None
    assert production.version == max(record.version for record in after_first)

    # The curl the demo prints works against the README's serve command.
    curl = next(line for line in second.output.splitlines() if "curl -s -X POST" in line)
    curl = curl[curl.index("curl") :]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")} | {
        "CHURNOPS_HOME": str(home),
        "CHURNOPS_NOW": NOW,  # served features are fresh as of the demo's pinned clock
    }
    log = (tmp_path / "serve.log").open("wb")
    service = subprocess.Popen(
        [CHURNOPS, "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert service.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        answer = subprocess.run(
            ["bash", "-c", re.sub(r"127\.0\.0\.1:3000", f"127.0.0.1:{port}", curl)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body = json.loads(answer.stdout)
        assert body["model_version"] == str(production.version)
        [prediction] = body["predictions"]
        assert prediction["status"] == "ok"
        assert 0.0 < prediction["churn_probability"] < 1.0
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=30)
        log.close()


def test_demo_names_the_gate_that_keeps_the_challenger_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other outcome: the check fires, the challenger trains, and a gate it cannot pass
    (here: beat Production's test ROC-AUC by 0.5) refuses it; the run names the gate and
    Production stays at version 1. One run: the serve part is the test above."""
    from churnops.training import gates

    home = tmp_path / "home"
    policy = tmp_path / "gates.yaml"
    default = gates.default_policy_path().read_text(encoding="utf-8")
    assert "min_improvement: 0.001" in default
    policy.write_text(default.replace("min_improvement: 0.001", "min_improvement: 0.5"), encoding="utf-8")
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    monkeypatch.setenv("CHURNOPS_NOW", NOW)
    monkeypatch.setenv("CHURNOPS_GATE_POLICY", str(policy))
    result = CliRunner().invoke(app, ARGS)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    with open_registry(settings, write=False) as registry:
        versions = registry.all_versions()
        production = registry.production()
        decisions = list_decisions(registry.engine, name=settings.model_name)
    assert [(d.fired, d.trigger and d.trigger.value) for d in decisions] == [(True, "drift")]
    assert "challenger" in text and "on labels 2026-08-01 .. 2026-11-01" in text, text
    assert "x min_improvement:roc_auc:" in text, text  # the gate, by name
    assert "Production unchanged (version 1)" in text, text
    assert "serving follows the production alias" not in text
    assert [v.version for v in versions] == [1]
    assert production is not None and production.version == 1
