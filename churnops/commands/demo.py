"""`churnops demo`: the whole loop on the embedded default, from an empty home dir.

generate -> feast apply -> materialize -> training set -> train + gates -> register ->
Staging -> Production -> how to serve it. Idempotent: a second run regenerates the same data
and trains again (the gates decide whether that makes a new version).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _start(months: int) -> date:
    """First snapshot such that the newest one is this month's: served features are then fresh
    (inside the views' TTL) when the demo's model is called today."""
    today = datetime.now(UTC).date()
    index = today.year * 12 + today.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


def demo(
    customers: int = typer.Option(5000, "--customers", help="Synthetic customers to generate."),
    months: int = typer.Option(12, "--months", help="Monthly snapshots."),
    seed: int = typer.Option(42, "--seed"),
) -> None:
    """Run ChurnOps end to end on generated data (no services needed)."""
    from churnops.data.generate import generate_churn_data, write_generated
    from churnops.features.materialize import materialize
    from churnops.features.store import apply, definitions, feature_store
    from churnops.features.training_set import build_training_set, label_entity_frame
    from churnops.schema import EVENT_TS, LABEL
    from churnops.settings import Settings

    started = time.perf_counter()
    settings = Settings()
    console.rule("[bold]ChurnOps demo")
    console.print(f"home: {settings.home}")

    with console.status("generating synthetic customers..."):
        data = generate_churn_data(customers=customers, months=months, seed=seed, start=_start(months))
        write_generated(data=data, sources_dir=settings.sources_dir)
    console.print(
        f"[green]generated[/] {data.customers:,} customers, {data.snapshot_rows:,} monthly snapshot rows, "
        f"{data.churn_events:,} churn events ({data.churn_rate:.1%} per month), "
        f"{data.first_snapshot:%Y-%m-%d} .. {data.last_snapshot:%Y-%m-%d}"
    )

    with console.status("applying the Feast repo..."):
        store = feature_store(settings)
        defs = definitions(settings)
        apply(store=store, defs=defs)
    console.print(
        f"[green]applied[/] entity customer, views {', '.join(defs.views)}, FeatureService {defs.churn_v1.name}"
    )

    with console.status("materializing the online store..."):
        result = materialize(store=store, end=data.last_snapshot)
    console.print(f"[green]materialized[/] online store (SQLite) as of {result.end:%Y-%m-%d %H:%M} UTC")

    with console.status("building the point-in-time training set..."):
        entity = label_entity_frame(sources_dir=settings.sources_dir)
        frame = build_training_set(store=store, entity_df=entity, feature_service=settings.feature_service)
    features = [f.name for proj in defs.churn_v1.feature_view_projections for f in proj.features]
    console.print(
        f"[green]training set[/] {len(frame):,} rows (= {len(entity):,} labels), {int(frame[LABEL].sum()):,} churned, "
        f"{frame[EVENT_TS].min():%Y-%m-%d} .. {frame[EVENT_TS].max():%Y-%m-%d}, {len(features)} features"
    )

    summary = Table(title="where things are", show_header=False)
    summary.add_row("sources (parquet)", str(settings.sources_dir))
    summary.add_row("Feast registry", settings.registry_url)
    summary.add_row("online store", str(settings.feast_dir / "online.db"))
    summary.add_row("MLflow", settings.tracking_uri)
    summary.add_row("features", ", ".join(features))
    console.print(summary)
    console.print(f"done in {time.perf_counter() - started:.1f} s")
