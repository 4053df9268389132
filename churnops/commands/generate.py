"""Placeholder until the `generate` command lands (being written now)."""

import typer


def generate() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=2)
