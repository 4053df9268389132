"""Placeholder until the `registry` commands land (being written now)."""

import typer

app = typer.Typer(help="registry commands", no_args_is_help=True)
