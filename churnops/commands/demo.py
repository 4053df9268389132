"""Placeholder until the demo lands."""

import typer


def demo() -> None:
    """Not implemented yet."""
    raise typer.Exit(code=2)
