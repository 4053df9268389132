"""`churnops data ingest`: a Telco churn CSV into the Feast sources, bad rows quarantined.

Exit codes: 0 when the file was ingested (even if rows were quarantined), 2 when the file as a
whole is unusable or ``--as-of`` is invalid. pandas and friends are imported inside the command
so `churnops --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from churnops.commands.common import fail, load_settings, safe_text

if TYPE_CHECKING:
    from datetime import datetime

    from churnops.data.ingest import IngestReport
    from churnops.features.freshness import Freshness

TOP_REASONS = 8


def _parse_as_of(value: str) -> datetime:
    """An ISO time that carries its offset ('Z' or +HH:MM); naive times are ambiguous."""
    from churnops.contracts.timestamps import parse_utc

    return parse_utc(value, field="--as-of")


def _print_summary(report: IngestReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    counts = Table(
        title=safe_text(f"Ingested {report.path.name} as of {report.as_of.isoformat()}"), show_header=False
    )
    counts.add_row("read", f"{report.read:,}")
    counts.add_row("accepted", f"[green]{report.accepted:,}[/green]")
    colour = "red" if report.quarantined else "green"
    counts.add_row("quarantined", f"[{colour}]{report.quarantined:,}[/{colour}]")
    if report.filled_total_charges:
        counts.add_row("blank TotalCharges (tenure 0) -> 0.0", f"{report.filled_total_charges:,}")
    counts.add_row("labels", "written" if report.with_labels else "no Churn column: features only")
    console.print(counts)
    if report.extra_columns:
        console.print(safe_text(f"ignored extra columns: {', '.join(repr(c) for c in report.extra_columns)}"))
    if report.violations:
        reasons = Table(title="Top reasons")
        reasons.add_column("column")
        reasons.add_column("problem")
        reasons.add_column("rows", justify="right")
        reasons.add_column("fix")
        for v in report.violations[:TOP_REASONS]:
            reasons.add_row(safe_text(v.column), safe_text(v.code), f"{v.rows:,}", safe_text(v.fix))
        console.print(reasons)
        if len(report.violations) > TOP_REASONS:
            console.print(f"... and {len(report.violations) - TOP_REASONS} more kinds of problem")
    if report.quarantine_path is not None:
        console.print(safe_text(f"quarantine file: {report.quarantine_path}"))
    console.print(safe_text(f"sources: {', '.join(str(p) for p in report.sources.values())}"))


def ingest(
    path: Annotated[
        Path, typer.Argument(help="The Telco churn CSV (the public file or an export of the same shape).")
    ],
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="Snapshot time the CSV describes, with its offset: 2024-06-30T00:00:00Z. "
            "Re-ingesting with the same time replaces that snapshot.",
        ),
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Validate a Telco CSV, quarantine bad rows with reasons, write the good ones as Feast sources."""
    from churnops.data.ingest import DataFileError, ingest_telco

    try:
        when = _parse_as_of(as_of)
    except ValueError as error:
        raise fail(str(error), json_output=json_output) from None
    settings = load_settings(json_output=json_output)
    try:
        report = ingest_telco(
            path=path,
            as_of=when,
            sources_dir=settings.sources_dir,
            quarantine_dir=settings.quarantine_dir,
            now=settings.clock,
        )
    except DataFileError as error:
        raise fail(str(error), json_output=json_output) from None
    fresh, warning = _freshness(report, now=settings.clock)
    if json_output:
        typer.echo(json.dumps({**report.to_dict(), "freshness": fresh.to_dict(), "warning": warning}))
        return
    _print_summary(report)
    if warning:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(escape(warning), style="yellow")


def _freshness(report: IngestReport, *, now: datetime) -> tuple[Freshness, str | None]:
    """Whether the snapshot is servable at ``now`` and, if not, the warning naming the as-of to use."""
    import shlex

    from churnops.commands.freshness_note import stale_warning
    from churnops.features.definitions import TTL
    from churnops.features.freshness import freshness, today_as_of

    fresh = freshness(data_time=report.as_of, ttl={str(view): ttl for view, ttl in TTL.items()}, now=now)
    if fresh.servable:
        return fresh, None
    today = today_as_of(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return fresh, stale_warning(
        fresh,
        serve_now=f"`churnops data ingest {shlex.quote(str(report.path))} --as-of {today}` "
        "(a snapshot CSV has no time of its own: stamp it with when it describes your customers)",
    )
