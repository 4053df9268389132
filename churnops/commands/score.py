"""`churnops score`: every active customer scored by the Production model, ranked, and logged.

The model comes from the same SHA-checked loader serving uses (``wiring.model_source``); the
features are point-in-time from the offline store at ``--as-of``. Exit codes: 0 scored, 2 bad
input or nothing to score (the message says what to run first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from churnops.commands.common import fail, load_settings, pinned_now, quiet_libraries, safe_text

SUFFIXES = (".parquet", ".csv")


def score(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Score as of this time (with offset; default: the newest snapshot)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Ranked scores, .parquet or .csv (default <home>/scores/scores-<as-of>.parquet)."
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Rows of the ranking to print.")] = 10,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Score every customer active at --as-of with the Production model; append to the prediction log."""
    settings = load_settings(json_output=json_output)
    if out is not None and out.suffix.lower() not in SUFFIXES:
        raise fail(f"--out {out}: write .parquet or .csv", json_output=json_output)
    from churnops.contracts.columns import VIEWS
    from churnops.features.materialize import latest_event_time
    from churnops.jobs import score_production
    from churnops.scoring.batch import BatchScoringError

    quiet_libraries()
    try:
        when = (
            # scored rows are stamped --as-of: never after now, or the monitoring windows and the
            # retraining check (which read only windows that have ended) would skip them
            pinned_now(as_of, option="--as-of", json_output=json_output, wall=settings.clock)
            if as_of
            else latest_event_time(sources_dir=settings.sources_dir, views=list(VIEWS))
        )
    except ValueError as error:
        raise fail(str(error), json_output=json_output) from None
    if when is None:
        raise fail(
            f"no feature snapshots under {settings.sources_dir}: run `churnops data generate` or "
            "`churnops data ingest FILE --as-of TIME` first",
            json_output=json_output,
        )
    from feast.errors import FeastError
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    path = out or settings.layout.scores / f"scores-{when:%Y%m%dT%H%M%SZ}.parquet"
    try:  # before anything is scored or logged: a bad --out must not leave logged rows behind
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise OSError(f"--out {path} is a directory")
    except OSError as error:
        raise fail(f"--out {path}: {error}", json_output=json_output) from None
    try:
        result = score_production(settings=settings, as_of=when)
    except (BatchScoringError, ValueError, OSError, RuntimeError, FeastError, SQLAlchemyError) as error:
        # RuntimeError includes ArtifactIntegrityError (a tampered model is refused, not loaded)
        text = str(error).strip()
        raise fail(text.splitlines()[0] if text else type(error).__name__, json_output=json_output) from None
    except MlflowException as error:
        raise fail(f"MLflow: {error.message}", json_output=json_output) from None
    frame = result.frame
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    doc = {**result.to_json(), "out": str(path.resolve())}
    if json_output:
        typer.echo(json.dumps(doc))
        return
    _print(doc=doc, frame=frame.head(top))


def _print(*, doc: dict[str, object], frame: object) -> None:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    assert isinstance(frame, pd.DataFrame)
    console = Console()
    statuses = doc["statuses"]
    assert isinstance(statuses, dict)
    console.print(
        f"scored {doc['scored']:,} of {doc['rows']:,} active customers as of {doc['as_of']} with "
        f"{safe_text(str(doc['model_name']))} v{doc['model_version']} "
        f"({', '.join(f'{k} {v:,}' for k, v in statuses.items())}); logged {doc['logged']:,} rows"
    )
    if not frame.empty:
        table = Table(title="Highest churn risk")
        for column in ("rank", "customer", "probability", "decile"):
            table.add_column(column, justify="left" if column == "customer" else "right")
        for row in frame.itertuples(index=False):
            table.add_row(
                str(row.rank),
                safe_text(str(row.customer_id)),
                f"{row.churn_probability:.3f}",
                str(row.decile),
            )
        console.print(table)
    console.print(f"ranking: {safe_text(str(doc['out']))}")
