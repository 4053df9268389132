"""Placeholder until the `serve` command lands (being written now)."""

import typer


def serve() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=2)
