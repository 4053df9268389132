"""`churnops train`: train on a Feast FeatureService, gate the candidate, register it if it passes.

Builds ``Settings()`` and gets the Feast store and the registry from ``churnops.wiring``, then
calls :func:`churnops.training.train`. Prints a summary (candidates, test metrics, gate table, the
version or why none) or, with ``--json``, exactly one JSON object (``{"error": ...}`` on
failure). Exit codes: 0 registered, 3 the gates failed (nothing registered; the output says
which rules), 2 bad input or an error, with a one-line message and no stack trace.
``--start/--end`` restrict the labels (the entity frame) to a training window. Heavy imports happen
inside the command so `churnops --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churnops.commands.common import fail, load_settings, option_time, quiet_libraries, safe_text
from churnops.contracts.columns import FEATURE_SERVICE
from churnops.contracts.stages import Trigger, choices

if TYPE_CHECKING:
    from churnops.training import TrainResult

GATES_FAILED_EXIT = 3
"""Exit code when the candidate failed its gates and nothing was registered."""

SHOWN_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "top_decile_lift", "recall_at_threshold")


def _print_summary(result: TrainResult) -> None:
    from rich.console import Console

    from churnops.commands.tables import add_column, compact_table

    console = Console()
    console.print(
        f"run [bold]{result.run_id}[/bold] on feature service "
        f"[bold]{safe_text(result.feature_service)}[/bold]; "
        f"split: {result.split_strategy} ({safe_text(result.split_reason)})"
    )
    windows = compact_table("Splits")
    for column in ("split", "label times", "rows", "positives"):
        add_column(windows, column, right=column in ("rows", "positives"), keep=column != "split")
    for name, w in result.windows.items():
        span = f"{w.start:%Y-%m-%d}" if w.start == w.end else f"{w.start:%Y-%m-%d} .. {w.end:%Y-%m-%d}"
        windows.add_row(name, span, f"{w.rows:,}", f"{w.positives:,}")
    console.print(windows)

    candidates = compact_table("Candidates (picked on validation ROC-AUC)")
    add_column(candidates, "family")
    add_column(candidates, "validation ROC-AUC", right=True, keep=True)
    add_column(candidates, "chosen", keep=True)
    for c in result.candidates:
        candidates.add_row(c.family, f"{c.validation_roc_auc:.4f}", "[green]yes[/green]" if c.chosen else "")
    console.print(candidates)

    metrics = compact_table(f"Metrics (threshold {result.threshold:.3f}, chosen on validation by max F1)")
    add_column(metrics, "metric")
    add_column(metrics, "validation", right=True, keep=True)
    add_column(metrics, "test", right=True, keep=True)
    if result.production_test is not None:
        add_column(metrics, f"Production v{result.production_version} on test", right=True)
    for name in SHOWN_METRICS:
        row = [name, f"{result.validation.overall[name]:.4f}", f"{result.test.overall[name]:.4f}"]
        if result.production_test is not None:
            row.append(f"{result.production_test.overall[name]:.4f}")
        metrics.add_row(*row)
    for slice_name, values in result.test.slices.items():
        row = [safe_text(f"roc_auc [{slice_name}]"), "", f"{values['roc_auc']:.4f}"]
        val = result.validation.slices.get(slice_name)
        row[1] = f"{val['roc_auc']:.4f}" if val else "-"
        if result.production_test is not None:
            prod = result.production_test.slices.get(slice_name)
            row.append(f"{prod['roc_auc']:.4f}" if prod else "-")
        metrics.add_row(*row)
    console.print(metrics)

    gates = compact_table(f"Quality gates ({result.gates.policy})")
    add_column(gates, "rule")
    add_column(gates, "result", keep=True)
    add_column(gates, "detail")
    for r in result.gates.results:
        verdict = (
            "[yellow]skipped[/yellow]"
            if r.skipped
            else "[green]pass[/green]"
            if r.passed
            else "[yellow]not better[/yellow]"
            if result.gates.not_better
            else "[red]FAIL[/red]"
        )
        gates.add_row(safe_text(r.rule), verdict, safe_text(r.detail))
    console.print(gates)
    if result.version is not None:
        console.print(
            f"[green]registered[/green] as version [bold]{result.version}[/bold] "
            f"(sha256 {result.sha256[:12]})"
        )
    elif result.gates.not_better:  # a sound candidate that does not beat Production: no alarm
        console.print(f"[yellow]{safe_text(result.registration)}[/yellow]")
    else:
        console.print(f"[red]{safe_text(result.registration)}[/red]")


def train(
    feature_service: Annotated[
        str, typer.Option("--feature-service", help="The Feast FeatureService to train on.")
    ] = FEATURE_SERVICE,
    gate_policy: Annotated[
        Path | None,
        typer.Option(
            "--gate-policy", help="Gate policy YAML (default: CHURNOPS_GATE_POLICY, else the packaged one)."
        ),
    ] = None,
    trigger: Annotated[str, typer.Option("--trigger", help=f"Why: {choices(Trigger)}.")] = "manual",
    start: Annotated[
        str | None,
        typer.Option("--start", help="Only labels at or after this time (ISO 8601 with Z or +HH:MM)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Only labels at or before this time (ISO 8601 with Z or +HH:MM)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Train candidates on a FeatureService, evaluate them, and register the best if it passes the gates.

    Exit 0 registered, 3 gates failed (nothing registered), 2 bad input."""
    try:
        trigger = Trigger.parse(trigger).value
    except ValueError as error:
        raise fail(f"--trigger: {error}", json_output=json_output) from None
    labels_start = option_time(start, option="--start", json_output=json_output)
    labels_end = option_time(end, option="--end", json_output=json_output)
    if labels_start is not None and labels_end is not None and labels_start >= labels_end:
        raise fail(f"--start {start} must be before --end {end}", json_output=json_output)
    settings = load_settings(json_output=json_output)
    try:
        with _progress(enabled=not json_output) as progress:
            result = _run(
                settings=settings,
                feature_service=feature_service,
                gate_policy=gate_policy,
                trigger=trigger,
                labels_start=labels_start,
                labels_end=labels_end,
                progress=progress,
            )
    except _expected_errors() as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise fail(message, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps(result.to_dict(), default=str, allow_nan=False))
    else:
        _print_summary(result)
    if result.version is None:
        raise typer.Exit(code=GATES_FAILED_EXIT)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr naming the current step (none with --json or off a terminal)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    with console.status("starting...") as status:
        yield lambda step: status.update(f"{step}...")


def _expected_errors() -> tuple[type[BaseException], ...]:
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    from churnops.contracts.artifacts import ArtifactIntegrityError
    from churnops.features.engine_switch import SourcesForOtherStore
    from churnops.features.spark_session import SparkStartError
    from churnops.features.training_set import TimestampError
    from churnops.training import TrainingError
    from churnops.wiring import ArtifactLocationError
    from registry_ext import RegistryError

    return (
        TrainingError,
        ArtifactLocationError,
        TimestampError,
        SourcesForOtherStore,
        SparkStartError,
        RegistryError,
        ArtifactIntegrityError,
        MlflowException,
        SQLAlchemyError,
        OSError,
    )


def _run(
    *,
    settings: Any,
    feature_service: str,
    gate_policy: Path | None,
    trigger: str,
    labels_start: datetime | None = None,
    labels_end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    from churnops.training import TrainOptions, load_policy
    from churnops.training import train as train_model
    from churnops.training.pipeline import DEFAULT_EXPERIMENT
    from churnops.wiring import check_artifact_location, feature_store, open_registry

    quiet_libraries()  # after the imports: feast's own warning filters are set at its import
    policy = load_policy(gate_policy or settings.gate_policy)
    store = feature_store(settings)
    quiet_libraries()  # again: building the store imports feast modules that reset warning filters
    with open_registry(settings, write=True) as registry:
        check_artifact_location(settings, client=registry.client, experiment=DEFAULT_EXPERIMENT)
        return train_model(
            store=store,
            client=registry.client,
            registry=registry,
            sources_dir=settings.sources_dir,
            policy=policy,
            options=TrainOptions(
                feature_service=feature_service,
                trigger=trigger,
                labels_start=labels_start,
                labels_end=labels_end,
                actor=settings.actor,
                progress=progress,
            ),
            artifact_location=settings.artifact_location,
        )
