"""Every command on an empty home (issue 10.7, 10.9): exit 2 with the home in use and what to run
first, no traceback, and nothing created (no home, no stray files in the working directory);
exit 0 only for the commands that create what they need. The commands come from walking the
typer app, so a new command is covered without editing this file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from churnops.cli import app
from churnops.commands.home_guard import NEEDS
from tests.support.telco_csv import telco_table, write_csv

pytestmark = pytest.mark.integration

# Arguments a command needs to get past parsing (everything else runs with none).
ARGS: dict[str, list[str]] = {
    "features online": ["7590-VHVEG"],
    "registry show": ["1"],
    "registry promote": ["1", "--stage", "Staging", "--reason", "r"],
    "registry compare": ["1", "2"],
    "registry rollback": ["--reason", "r"],
    "registry adopt": ["1", "--reason", "r"],
    "registry delete-unregistered": ["1", "--reason", "r"],
}
# Commands that create what they need: rc 0 is their meaning on an empty home.
CREATORS = {"data generate", "data ingest", "registry migrate"}
# rc 0 on an empty home is their meaning, and they run for long: `demo` the whole loop (minutes;
# tests/integration/test_demo.py), `serve` until stopped, waiting for a Production model
# (tests/integration/test_serve_command.py), `simulate` replays months in throw-away homes of its
# own (tests/integration/test_simulate.py); `loop ui` runs Dagster's UI and daemon until stopped
# (an empty home's schedule and sensor skip; measured by hand, see the loop-run branch report).
SKIPPED = {"demo", "serve", "simulate", "loop ui"}
# `registry keys` works on key files, not on the home: with CHURNOPS_SIGNING_KEY_FILE set (as the
# tests set it, to one key pair per run) `rotate` here would rotate every other test's key.
# tests/unit/test_model_trust.py runs them on keys of their own.
SKIPPED |= {"registry keys init", "registry keys show", "registry keys rotate"}


def leaf_commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf commands by their path (typer's vendored click: a group has ``commands``)."""
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found |= leaf_commands(command, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = command
    return found


COMMANDS = leaf_commands(typer.main.get_command(app))


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An empty working directory (no .env) and a home that does not exist yet."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    monkeypatch.setenv("CHURNOPS_PROJECT", f"t{tmp_path.name[-12:]}")
    return cwd, home


def test_the_walk_finds_every_command() -> None:
    wanted = {"features online", "features apply", "train", "registry list", "serve", "score", "demo"}
    assert wanted <= COMMANDS.keys()
    # Every command is classified: it either needs something from the home or creates it.
    assert COMMANDS.keys() == NEEDS.keys() | CREATORS | SKIPPED


@pytest.mark.parametrize("command", sorted(COMMANDS.keys() - CREATORS - SKIPPED))
def test_command_on_an_empty_home_says_what_to_run_first(command: str, empty: tuple[Path, Path]) -> None:
    cwd, home = empty
    argv = [*command.split(), *ARGS.get(command, [])]
    result = CliRunner().invoke(app, argv)
    output = result.output + (result.stderr or "")
    assert result.exit_code == 2, (command, result.exit_code, output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in output
    assert str(home) in output and "CHURNOPS_HOME" in output, output  # which home, and how to pick another
    assert "run `churnops " in output and "first" in output, output  # what to run first
    assert not home.exists(), f"{command} created the home"
    assert list(cwd.iterdir()) == [], f"{command} left files in the working directory"
    if any(p.name == "json_output" for p in COMMANDS[command].params):
        result = CliRunner().invoke(app, [*argv, "--json"])
        assert result.exit_code == 2
        assert "run `churnops " in json.loads(result.stdout)["error"]
        assert not home.exists()


def test_creators_run_on_an_empty_home(empty: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, home = empty
    table = telco_table(customers=30, seed=1)
    csv_path = write_csv(path=tmp_path / "telco.csv", header=table.header, rows=table.rows)
    runs = {
        "data generate": ["data", "generate", "--customers", "40", "--months", "2", "--json"],
        "data ingest": ["data", "ingest", str(csv_path), "--as-of", "2026-11-30T00:00:00Z", "--json"],
        "registry migrate": ["registry", "migrate", "--json"],
    }
    assert runs.keys() == CREATORS
    for command, argv in runs.items():
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, (command, result.output)
        assert "Traceback" not in result.output
    assert home.exists() and list(cwd.iterdir()) == []
