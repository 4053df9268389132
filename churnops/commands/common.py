"""What every command shares at its entry point."""

from __future__ import annotations

import json
import os
import warnings

import typer


def quiet_libraries() -> None:
    """Keep library noise that says nothing to the user off the terminal (entry points only).

    Call it after the heavy imports: feast sets its own warning filters when it is imported.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # mlflow's SQLAlchemy store uses the deprecated noload strategy; ibis calls duckdb's renamed
    # fetch_arrow_table. Both are known and harmless (also filtered in pyproject.toml for tests).
    warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")
    warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated")


def fail(message: str, *, json_output: bool = False) -> typer.Exit:
    """Report a user-facing error (one JSON object with --json, else on stderr) and return the
    exit (code 2) for the caller to raise: a clear message, never a stack trace."""
    if json_output:
        typer.echo(json.dumps({"error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)
