"""`churnops data generate`: seeded synthetic churn data written as the Feast sources.

Heavy imports (numpy, pandas, pyarrow, rich) stay inside the command so `churnops --help` is fast.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import typer

from churnops.commands.common import load_settings


def _parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date; write it as YYYY-MM-DD", param_hint=f"'{option}'"
        ) from None


def generate(
    customers: Annotated[
        int, typer.Option("--customers", help="Distinct customers over the whole window.")
    ] = 5000,
    months: Annotated[
        int, typer.Option("--months", help="Monthly snapshots (1st of the month, 00:00 UTC).")
    ] = 12,
    seed: Annotated[int, typer.Option("--seed", help="Same seed and arguments give the same data.")] = 42,
    start: Annotated[
        str, typer.Option("--start", help="First snapshot: the 1st of a month, YYYY-MM-DD.")
    ] = "2024-01-01",
    data_drift_from: Annotated[
        str | None,
        typer.Option(
            "--data-drift-from", help="Price rise and fiber/e-check joiners from this date (YYYY-MM-DD)."
        ),
    ] = None,
    concept_drift_from: Annotated[
        str | None,
        typer.Option(
            "--concept-drift-from", help="Contracts and tenure stop protecting from this date (YYYY-MM-DD)."
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Generate seeded synthetic churn data (monthly snapshots with labels) as the Feast sources."""
    from churnops.data.generate import InvalidArgument, generate_churn_data, write_generated

    settings = load_settings(json_output=json_output)
    first = _parse_date(start, "--start")
    data_from = None if data_drift_from is None else _parse_date(data_drift_from, "--data-drift-from")
    concept_from = (
        None if concept_drift_from is None else _parse_date(concept_drift_from, "--concept-drift-from")
    )

    def run() -> tuple[Any, dict[str, Any]]:
        try:
            data = generate_churn_data(
                customers=customers,
                months=months,
                seed=seed,
                start=first,
                data_drift_from=data_from,
                concept_drift_from=concept_from,
            )
        except InvalidArgument as error:
            option = "--" + error.argument.replace("_", "-")
            raise typer.BadParameter(str(error), param_hint=f"'{option}'") from None
        return data, write_generated(data=data, sources_dir=settings.sources_dir)

    if json_output:
        data, written = run()
    else:
        from rich.console import Console

        with Console(stderr=True).status(f"Generating {customers:,} customers x {months} months..."):
            data, written = run()

    summary = {
        "customers": data.customers,
        "snapshot_rows": data.snapshot_rows,
        "churn_events": data.churn_events,
        "churn_rate": round(data.churn_rate, 6),
        "months": data.months,
        "seed": data.seed,
        "first_snapshot": data.first_snapshot.isoformat(),
        "last_snapshot": data.last_snapshot.isoformat(),
        "data_drift_from": data.data_drift_from.isoformat() if data.data_drift_from else None,
        "concept_drift_from": data.concept_drift_from.isoformat() if data.concept_drift_from else None,
        "drift": list(data.drift),
        "sources_dir": str(settings.sources_dir),
        "written": {name: str(path) for name, path in written.items()},
    }
    warning = _stale_warning(data.last_snapshot, months=months, now=settings.clock)
    summary["warning"] = warning
    if json_output:
        import json

        typer.echo(json.dumps(summary))
        return
    _print_summary(summary)
    if warning:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(escape(warning), style="yellow")


def _stale_warning(last_snapshot: Any, *, months: int, now: datetime) -> str | None:
    """The warning when the newest generated month is already past a view's TTL at ``now``."""
    from datetime import UTC

    import pandas as pd

    from churnops.commands.freshness_note import stale_warning
    from churnops.features.definitions import TTL
    from churnops.features.freshness import freshness, recent_start

    last = pd.Timestamp(last_snapshot)
    last = last.tz_localize(UTC) if last.tzinfo is None else last
    fresh = freshness(
        data_time=last.to_pydatetime(),
        ttl={str(view): ttl for view, ttl in TTL.items()},
        now=now,
    )
    if fresh.servable:
        return None
    start = recent_start(months=months, now=now)
    return stale_warning(
        fresh,
        serve_now=f"generate months that end now: `churnops data generate --months {months} --start {start}`",
    )


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Synthetic churn data", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("customers", f"{summary['customers']:,}")
    table.add_row("snapshot rows", f"{summary['snapshot_rows']:,}")
    table.add_row("churn events", f"{summary['churn_events']:,}")
    table.add_row("monthly churn rate", f"{summary['churn_rate']:.2%}")
    window = f"{summary['first_snapshot'][:10]} .. {summary['last_snapshot'][:10]}"
    table.add_row("snapshots", f"{summary['months']} monthly, {window}")
    table.add_row("seed", str(summary["seed"]))
    table.add_row("drift", "\n".join(summary["drift"]) or "none")
    table.add_row("sources", summary["sources_dir"])
    Console().print(table)
