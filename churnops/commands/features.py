"""`churnops features ...`: apply the Feast repo, build training sets, materialize, read online."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from churnops.commands.common import fail, load_settings, option_time, plain_text, quiet_libraries
from churnops.commands.common import safe_text as escape  # control characters too (issue 12.4)
from churnops.contracts.columns import FEATURE_SERVICE
from churnops.contracts.online import RowStatus

if TYPE_CHECKING:
    from churnops.contracts.online import OnlineRow
    from churnops.features.materialize import RemovalRefused

app = typer.Typer(
    help="The Feast feature repo: apply, training sets, materialize, online reads.", no_args_is_help=True
)
console = Console()


def _feast_problem(error: Exception, feature_service: str) -> str:
    """A Feast error as one line, with what to run when the repo was never applied."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"{text}: is {feature_service!r} the FeatureService's name? Run `churnops features apply` "
        "first (after `churnops data generate` or `data ingest`)"
    )


@app.command("apply")
def apply_cmd(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Register the entity, sources, feature views and FeatureService churn_v1.

    Under another offline store than the last apply (CHURNOPS_OFFLINE_STORE), the sources are
    re-registered for it: FileSource for duckdb, SparkSource for spark."""
    from churnops.contracts.redaction import redact
    from churnops.features.store import apply
    from churnops.wiring import feast_definitions, feature_store

    quiet_libraries()
    settings = load_settings(json_output=json_output)
    with _status(f"Applying the Feast repo to {redact(settings.registry_url)}...", json_output=json_output):
        applied = apply(store=feature_store(settings), defs=feast_definitions(settings))
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "applied": applied.names,
                    "registry": redact(settings.registry_url),
                    "offline_store": settings.offline_store,
                    "replaced_sources": applied.replaced,
                }
            )
        )
        return
    console.print(escape(f"applied {len(applied.names)} Feast objects to {redact(settings.registry_url)}"))
    if applied.replaced:
        was = ", ".join(sorted(set(applied.replaced.values())))
        console.print(
            escape(
                f"re-registered {len(applied.replaced)} sources for the {settings.offline_store} offline "
                f"store (they were {was}): {', '.join(sorted(applied.replaced))}; the feature views now "
                "read them, the online store is unchanged"
            )
        )


def _status(message: str, *, json_output: bool) -> contextlib.AbstractContextManager[object]:
    """A spinner on stderr while a step runs (nothing with --json)."""
    if json_output:
        return contextlib.nullcontext()
    return Console(stderr=True).status(escape(message))


@app.command("training-set")
def training_set_cmd(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the parquet (default <home>/training_set.parquet)."),
    ] = None,
    feature_service: Annotated[str, typer.Option("--feature-service")] = FEATURE_SERVICE,
    start: Annotated[
        str | None, typer.Option("--start", help="First label time (with offset, e.g. 2024-01-01T00:00:00Z).")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last label time (with offset).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build the point-in-time training frame for a FeatureService from the label source."""
    from feast.errors import FeastError

    from churnops.contracts.columns import EVENT_TS, LABEL
    from churnops.features.spark_session import SparkStartError
    from churnops.features.training_set import TimestampError, build_training_set, label_entity_frame
    from churnops.wiring import feature_store

    quiet_libraries()
    settings = load_settings(json_output=json_output)
    entity = label_entity_frame(
        sources_dir=settings.sources_dir,
        start=option_time(start, option="--start", json_output=json_output),
        end=option_time(end, option="--end", json_output=json_output),
    )
    if entity.empty:
        raise fail(
            f"no labels under {settings.source_dir('labels')}: run `churnops data generate` or "
            "`churnops data ingest FILE --as-of TIME` first",
            json_output=json_output,
        )
    try:
        frame = build_training_set(
            store=feature_store(settings), entity_df=entity, feature_service=feature_service
        )
    except (TimestampError, ValueError, SparkStartError) as error:
        raise fail(str(error), json_output=json_output) from None
    except FeastError as error:
        raise fail(_feast_problem(error, feature_service), json_output=json_output) from None
    out = out or settings.layout.training_set
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    summary = {
        "rows_in": len(entity),
        "rows_out": len(frame),
        "positives": int(frame[LABEL].sum()),
        "start": frame[EVENT_TS].min().isoformat(),
        "end": frame[EVENT_TS].max().isoformat(),
        "columns": list(frame.columns),
        "path": str(out.resolve()),
    }
    if json_output:
        typer.echo(json.dumps(summary))
        return
    console.print(
        f"training set: {summary['rows_out']:,} rows (of {summary['rows_in']:,} labels), "
        f"{summary['positives']:,} churned, {summary['start']} .. {summary['end']} "
        f"-> {escape(summary['path'])}"
    )


@app.command("materialize")
def materialize_cmd(
    end: Annotated[
        str | None,
        typer.Option("--end", help="Cut-off time (default: the newest event in the sources, at most now)."),
    ] = None,
    writer: Annotated[
        str, typer.Option("--writer", help="auto (direct on plain Redis, else Feast), feast or direct.")
    ] = "auto",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Remove customers even beyond CHURNOPS_MATERIALIZE_MAX_REMOVED_SHARE of a view.",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Make the online store equal the offline point-in-time view at --end (removals included).

    Refused (exit 3, nothing touched) when a view would lose more than
    CHURNOPS_MATERIALIZE_MAX_REMOVED_SHARE of its customers, unless --force."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from churnops.commands.freshness_note import stale_warning
    from churnops.contracts.clock import FutureTimeError, not_in_future
    from churnops.contracts.columns import VIEWS
    from churnops.features.freshness import freshness
    from churnops.features.materialize import RemovalRefused, Writer, latest_event_time, materialize
    from churnops.features.spark_session import SparkStartError
    from churnops.wiring import feature_store

    quiet_libraries()
    settings = load_settings(json_output=json_output)
    now = settings.clock
    cutoff = option_time(end, option="--end", json_output=json_output)
    if cutoff is not None:
        try:
            not_in_future(cutoff, field="--end", wall=now)
        except FutureTimeError as error:
            raise fail(str(error), json_output=json_output) from None
    else:  # the newest event, but never after now: rows stamped later are not valid yet
        newest = latest_event_time(sources_dir=settings.sources_dir, views=list(VIEWS))
        cutoff = None if newest is None else min(newest, now)
    if cutoff is None:
        raise fail(
            f"the sources under {settings.sources_dir} are empty: run `churnops data generate` or "
            "`churnops data ingest FILE --as-of TIME` first",
            json_output=json_output,
        )
    if writer not in ("auto", "feast", "direct"):
        raise fail(f"--writer: {writer!r} is not one of auto, feast, direct", json_output=json_output)
    progress = Progress(
        TextColumn("materializing {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} views"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=json_output,
        transient=True,
    )
    with progress:
        task = progress.add_task(f"as of {cutoff.isoformat()}", total=len(VIEWS))
        try:
            result = materialize(
                store=feature_store(settings),
                end=cutoff,
                writer=cast(Writer, writer),
                on_view=lambda _view: progress.advance(task),
                max_removed_share=None if force else settings.materialize_max_removed_share,
            )
        except RemovalRefused as refused:
            raise _refuse_removal(refused, json_output=json_output) from None
        except (ValueError, SparkStartError) as error:  # DirectWriterUnsupported, SourcesForOtherStore
            raise fail(str(error), json_output=json_output) from None
    target = "Redis" if settings.redis_url else "SQLite"
    fresh = freshness(
        data_time=result.end,
        ttl={view: stop - start for view, (start, stop) in result.windows.items()},
        now=now,
    )
    if json_output:
        views = {
            view: {
                "start": start.isoformat(),
                "end": stop.isoformat(),
                "writer": result.writers[view],
                "removed": result.removed.get(view),
            }
            for view, (start, stop) in result.windows.items()
        }
        typer.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "end": result.end.isoformat(),
                    "target": target,
                    "views": views,
                    "freshness": fresh.to_dict(),
                }
            )
        )
        return
    table = Table(
        "view",
        "window",
        "writer",
        "removed",
        title=f"Materialized into {target} as of {result.end:%Y-%m-%d %H:%M} UTC",
    )
    for view, (start, stop) in result.windows.items():
        removed = result.removed.get(view)
        table.add_row(
            view,
            f"{start:%Y-%m-%d} .. {stop:%Y-%m-%d}",
            result.writers[view],
            "not pruned (see log)" if removed is None else f"{removed:,}",
        )
    console.print(table)
    if not fresh.servable:
        Console(stderr=True).print(
            escape(
                stale_warning(
                    fresh,
                    serve_now="ingest or generate data of today (`churnops data ingest FILE --as-of "
                    "<today>T00:00:00Z`), then materialize again",
                )
            ),
            style="yellow",
        )


def _refuse_removal(refused: RemovalRefused, *, json_output: bool) -> typer.Exit:
    """Exit 3: the run would empty too much of the online store; say how many, from where, why."""
    fix = (
        "nothing was removed or written. Check --end (the sources' window at that time is what stays "
        "online); if the removal is meant, run again with --force, or raise "
        "CHURNOPS_MATERIALIZE_MAX_REMOVED_SHARE"
    )
    message = f"refused: {refused}; {fix}"
    if json_output:
        views = {
            p.view: {
                "stored": p.stored,
                "would_remove": p.removed,
                "no_source_row_in_window": p.outside_window,
                "newer_than_end": p.newer_than_end,
                "share": round(p.share, 4),
            }
            for p in refused.plans
        }
        typer.echo(
            json.dumps(
                {
                    "error": message,
                    "refused": "removal_share",
                    "max_removed_share": refused.max_share,
                    "end": refused.end.isoformat(),
                    "views": views,
                }
            )
        )
    else:
        typer.echo(f"error: {plain_text(message)}", err=True)
    return typer.Exit(code=3)


def _why(row: OnlineRow) -> str:
    """What makes a row unusable, after its status: the stale views or the missing features."""
    if row.stale_views:
        return f" (older than the TTL: {', '.join(row.stale_views)})"
    if row.missing and row.status == RowStatus.MISSING_FEATURES:
        return f" ({len(row.missing)} missing)"
    return ""


@app.command("online")
def online_cmd(
    customer_ids: Annotated[list[str], typer.Argument(help="Customer ids to look up.")],
    feature_service: Annotated[str, typer.Option("--feature-service")] = FEATURE_SERVICE,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Read a FeatureService's online features for customer ids (with per-row status)."""
    from feast.errors import FeastError

    from churnops.features.online import fetch_online, service_layout
    from churnops.wiring import feature_store

    quiet_libraries()
    settings = load_settings(json_output=json_output)
    store = feature_store(settings)
    try:
        layout = service_layout(store=store, feature_service=feature_service)
        rows = fetch_online(store=store, layout=layout, customer_ids=customer_ids, now=settings.clock)
    except FeastError as error:
        raise fail(_feast_problem(error, feature_service), json_output=json_output) from None
    if json_output:
        typer.echo(
            json.dumps(
                [
                    {
                        "customer_id": r.customer_id,
                        "status": r.status,
                        "features": r.features,
                        "event_timestamps": r.event_timestamps,
                    }
                    for r in rows
                ],
                default=str,
            )
        )
        return
    layout_view = layout.view_of
    for r in rows:
        if r.status == RowStatus.UNKNOWN_CUSTOMER:  # nothing online for it: no table of blanks
            console.print(f"{escape(r.customer_id)}: [yellow]unknown_customer[/yellow] (no features online)")
            continue
        # One table per customer, features down the side: readable at 80 columns.
        colour = "green" if r.status == RowStatus.OK else "yellow"
        table = Table(
            "feature",
            "value",
            "view",
            title=f"{escape(r.customer_id)}: [{colour}]{r.status}[/{colour}]{_why(r)}",
            title_justify="left",
        )
        for name, value in r.features.items():
            table.add_row(name, "" if value is None else escape(str(value)), layout_view.get(name, ""))
        console.print(table)
