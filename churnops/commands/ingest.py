"""Placeholder until the `ingest` command lands (being written now)."""

import typer


def ingest() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=2)
