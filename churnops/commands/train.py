"""Placeholder until the `train` command lands (being written now)."""

import typer


def train() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=2)
