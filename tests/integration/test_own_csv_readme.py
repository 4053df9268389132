"""The README's "bring your own CSV" block, run exactly as written on the public Telco file
(issue 10.1): ingest -> apply -> materialize -> train -> promote -> serve -> curl -> batch score,
and every served and batch score is ``ok``.

The block is read from the README between its ``own-csv`` markers and run by bash from the
checkout, with three substitutions only (each checked to be present, so the README and this
test cannot drift apart): the home goes to a temp dir, port 3000 to a free port, and the CSV
name to the shared public file (read in place, never copied).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.support.serving_env import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HOME_LITERAL = "$PWD/.churnops-telco"
CSV_LITERAL = "WA_Fn-UseC_-Telco-Customer-Churn.csv"
PORT_LITERAL = "3000"


def readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- own-csv:begin -->\n```bash\n(.*?)```\n<!-- own-csv:end -->", text, re.S)
    assert found, "README.md lost its own-csv block"
    return found.group(1)


def test_block_has_the_whole_path() -> None:
    block = readme_block()
    for step in (
        "churnops data ingest",
        "churnops features apply",
        "churnops features materialize",
        "churnops train",
        "--stage Production",
        "churnops serve",
        "curl -s -X POST",
        "churnops score",
    ):
        assert step in block, step
    for literal in (HOME_LITERAL, CSV_LITERAL, f"--port {PORT_LITERAL}", f":{PORT_LITERAL}/"):
        assert literal in block, literal


def test_readme_own_csv_path_serves_ok_scores(telco_csv: Path, tmp_path: Path) -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH (./dev installs it)")
    home, port = tmp_path / "home", free_port()
    script = (
        readme_block()
        .replace(HOME_LITERAL, str(home))
        .replace(CSV_LITERAL, str(telco_csv))
        .replace(f"--port {PORT_LITERAL}", f"--port {port}")
        .replace(f":{PORT_LITERAL}/", f":{port}/")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
    log = tmp_path / "block.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=out,
            start_new_session=True,
        )
        try:
            stdout, _ = process.communicate(timeout=900)
        finally:  # the block's background server, if the block stopped before `kill $SERVER`
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    text = stdout.decode()
    assert process.returncode == 0, f"{text}\n{log.read_text()[-4000:]}"
    answer = json.loads(next(line for line in text.splitlines() if line.startswith('{"model_name"')))
    assert answer["model_version"] == "1"
    assert [p["customer_id"] for p in answer["predictions"]] == ["7590-VHVEG", "5575-GNVDE"]
    assert all(p["status"] == "ok" and 0 < p["churn_probability"] < 1 for p in answer["predictions"])
    (scores_path,) = (home / "scores").glob("scores-*.parquet")
    scores = pd.read_parquet(scores_path)
    assert len(scores) == 7043  # every customer of the public file, scored
    assert scores.filter(like="prob").notna().all().all()
    # The ingest said nothing about stale data: today's as-of is servable.
    assert "older than the TTL" not in log.read_text()
