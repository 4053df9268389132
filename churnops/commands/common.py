"""What every command shares at its entry point."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from churnops.contracts.log_filters import drop_messages, quiet_known_warnings

if TYPE_CHECKING:
    from churnops.settings import Settings


def quiet_libraries() -> None:
    """Keep library noise that says nothing to the user off the terminal (entry points only).

    Call it after the heavy imports: feast sets its own warning filters when it is imported.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # With an http:// tracking URI MLflow writes "View run ... at: <url>" to stdout when a run
    # ends, which breaks the one-JSON-object contract of --json.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # mlflow's SQLAlchemy store uses the deprecated noload strategy; ibis calls duckdb's renamed
    # fetch_arrow_table; ... Known and harmless (also filtered in pyproject.toml for tests).
    quiet_known_warnings()
    # MLflow announces at INFO that it creates or upgrades its own tables in a new store.
    drop_messages(
        "mlflow.store.db.utils", ("Creating initial MLflow database tables", "Updating database tables")
    )


def fail(message: str, *, json_output: bool = False) -> typer.Exit:
    """Report a user-facing error (one JSON object with --json, else on stderr) and return the
    exit (code 2) for the caller to raise: a clear message, never a stack trace."""
    if json_output:
        typer.echo(json.dumps({"error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def settings_problem(error: Exception) -> str:
    """A pydantic ValidationError of Settings as "CHURNOPS_X=value: problem" lines (all of them)."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ())) or "settings"
        variable = f"CHURNOPS_{field.upper()}"
        value = item.get("input")
        shown = "" if value is None or isinstance(value, dict) else f"={str(value)[:80]!r}"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{variable}{shown}: {message}")
    return "invalid settings: " + "; ".join(problems)


def load_settings(*, json_output: bool = False) -> Settings:
    """``Settings()`` from the environment and ``.env``, or a clear exit 2 naming each bad variable."""
    from churnops.settings import Settings

    try:
        return Settings()
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise fail(settings_problem(error), json_output=json_output) from None


def option_time(value: str | None, *, option: str, json_output: bool = False) -> datetime | None:
    """A time option (ISO 8601 with ``Z`` or an offset) as an aware UTC time, or exit 2 naming it."""
    from churnops.contracts.timestamps import parse_utc

    if value is None:
        return None
    try:
        return parse_utc(value, field=option)
    except ValueError as error:
        raise fail(str(error), json_output=json_output) from None
