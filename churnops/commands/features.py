"""Placeholder until the `features` commands land (being written now)."""

import typer

app = typer.Typer(help="features commands", no_args_is_help=True)
