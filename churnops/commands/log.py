"""`churnops log compact`: merge the prediction log's small part files, per day partition.

Serving writes one small part file per flush and worker; a month of them is thousands of files
that every monitoring read has to open. Compaction merges each partition's part files into one,
counting the rows on both sides, safe while serving writes and after a crash (see
``churnops.contracts.prediction_log.compact_partition``). The embedded (parquet) log only: the SQL
log is one table.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from churnops.commands.common import fail, load_settings

app = typer.Typer(help="The prediction log: compaction.", no_args_is_help=True)


@app.command("compact")
def compact(
    min_files: Annotated[
        int,
        typer.Option("--min-files", min=2, help="Compact a partition holding at least this many part files."),
    ] = 2,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Merge each day's small part files into one (rows counted on both sides)."""
    from rich.console import Console
    from rich.table import Table

    from churnops.jobs import compact_log

    settings = load_settings(json_output=json_output)
    try:
        done = compact_log(settings=settings, min_files=min_files)
    except ValueError as error:
        raise fail(str(error), json_output=json_output) from None
    results = done.compacted
    if json_output:
        typer.echo(json.dumps(done.to_dict(), indent=2))
        return
    console = Console()
    if not results:
        console.print(
            f"nothing to compact: {done.partitions} partition(s), none with {min_files}+ part files"
        )
        return
    table = Table(title="prediction log compaction")
    for column in ("day", "files", "rows in", "rows out"):
        table.add_column(column, justify="left" if column == "day" else "right")
    for r in results:
        table.add_row(r.day, f"{r.files_in:,} -> 1", f"{r.rows_in:,}", f"{r.rows_out:,}")
    console.print(table)
