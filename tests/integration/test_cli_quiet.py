"""The CLI as a new user runs it: what reaches the terminal is ChurnOps' own output only.

Real subprocesses on a temp home: generate -> apply -> materialize -> train -> train again.
stderr carries no library warning (MLflow's table creation and pip-version notices, its
integer-schema hint, SQLAlchemy/ibis deprecations, Feast's false "FileSource path does not
exist" on glob sources); the idempotent second training says plainly that there is no new
version and why; every table fits 80 columns without an ellipsis. (`feast apply` itself, run
in feature_repo/ as the README says, is checked for the glob-source warning by
tests/integration/test_feature_repo.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CHURNOPS = str(Path(sys.executable).parent / "churnops")
NOISE = (
    "Creating initial MLflow database tables",
    "Updating database tables",
    "Failed to resolve installed pip version",
    "Inferred schema contains integer",
    "Warning",  # any Python warning: DeprecationWarning, UserWarning, ...
    "FileSource path does not exist",
    "Traceback",
)


def cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURNOPS_", "MLFLOW_"))}
    env.update({"CHURNOPS_HOME": str(home), "COLUMNS": "80", "NO_COLOR": "1"})
    return subprocess.run(
        [CHURNOPS, *args], capture_output=True, text=True, env=env, cwd=cwd or home.parent, timeout=600
    )


def quiet(done: subprocess.CompletedProcess[str]) -> None:
    found = [n for n in NOISE if n in done.stderr]
    assert not found, f"{found} on stderr of {done.args}:\n{done.stderr[-3000:]}"


def test_the_first_hour_commands_print_only_their_own_output(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args in (
        ("data", "generate", "--customers", "1200", "--months", "6", "--seed", "3"),
        ("features", "apply"),
        ("features", "materialize"),
    ):
        done = cli(home, *args)
        assert done.returncode == 0, done.stderr
        quiet(done)
    first = cli(home, "train")
    assert first.returncode == 0, first.stdout + first.stderr
    quiet(first)
    assert "registered as version 1" in first.stdout
    promoted = [
        cli(home, "registry", "promote", "1", "--stage", stage, "--reason", "first model")
        for stage in ("Staging", "Production")
    ]
    assert all(p.returncode == 0 for p in promoted), [p.stderr for p in promoted]
    again = cli(home, "train")
    assert again.returncode == 3  # refused by a gate, and says so without alarm
    quiet(again)
    message = (
        "no new version: the candidate is not better than Production: roc_auc gain +0.0000 "
        "[95% CI +0.0000, +0.0000] does not clear min_improvement 0.0010"
    )
    assert message in " ".join(again.stdout.split())
    assert "FAIL" not in again.stdout and "gates failed" not in again.stdout
    # the night's one command, on the same home: the day after the last snapshot (2024-06-01)
    day = cli(home, "loop", "run", "--date", "2024-06-02")
    assert day.returncode == 0, day.stdout + day.stderr
    quiet(day)
    assert "no retrain due" in day.stdout and "ReportStatus" not in day.stdout
    for out in (first.stdout, again.stdout, day.stdout):
        assert "\u2026" not in out
        assert max(len(line) for line in out.splitlines()) <= 80
