"""`churnops demo` on an empty home, twice, then the printed curl against `churnops serve`.

The first run ends with one pass of the retraining loop on the injected price war: the check
fires on drift, the challenger is gated against Production on the same rows, and either it is
promoted (serving's alias moves) or the run says why not."""

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
"""The demo's clock, pinned: its data follow the month it runs in, so an unpinned run tells a
different story each month (the December 2026 run promoted the challenger, others did not)."""


def test_demo_is_idempotent_and_its_curl_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    monkeypatch.setenv("CHURNOPS_NOW", NOW)
    # No key setup at all: the demo's first registration creates <home>/keys (the served
    # subprocess below sees only CHURNOPS_HOME and must trust what the demo signed).
    monkeypatch.delenv("CHURNOPS_SIGNING_KEY_FILE")
    monkeypatch.delenv("CHURNOPS_TRUSTED_KEYS_FILE")
    runner = CliRunner()
    args = ["demo", "--customers", "2500", "--months", "8"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "Production" in first.output
    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    with open_registry(settings, write=False) as registry:
        after_first = registry.all_versions()
        decisions = list_decisions(registry.engine, name=settings.model_name)
    # the loop: one decision, fired by drift, acted on (promoted, or refused with the gate named)
    assert [(d.fired, d.trigger and d.trigger.value) for d in decisions] == [(True, "drift")]
    text = " ".join(first.output.split())  # rich wraps lines at the terminal's 80 columns
    promoted = "registered version 2 and promoted it to Production" in text
    if promoted:
        assert len(after_first) == 2 and "serving follows the production alias: now v2" in text
        retrained = max(after_first, key=lambda record: record.version)  # all_versions: newest first
        assert retrained.tags["churnops.trigger"] == "drift"
        assert retrained.tags["churnops.decision_id"] == str(decisions[0].id)
    else:
        assert len(after_first) == 1 and "Production unchanged (version 1)" in text, text
        assert "gate(s) failed" in text or "not better than Production" in text, text

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
