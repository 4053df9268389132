"""`churnops registry ...` end to end on a real SQLite MLflow store: JSON output, errors, compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner


def test_read_commands_on_an_empty_registry_say_to_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from churnops.cli import app

    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "empty"))
    runner = CliRunner()
    result = runner.invoke(app, ["registry", "list"])
    assert result.exit_code == 2
    assert "churnops registry migrate" in result.stderr
    migrated = runner.invoke(app, ["registry", "migrate", "--json"])
    assert migrated.exit_code == 0, migrated.output
    assert json.loads(migrated.stdout)["revision"]
    listed = runner.invoke(app, ["registry", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []


def test_importing_the_command_module_stays_light() -> None:
    code = (
        "import sys, churnops.commands.registry as r; "
        "print(sorted(m for m in ('mlflow', 'sqlalchemy', 'registry_ext', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
