"""`churnops registry ...`: stages, audit trail, comparison, search and rollback of model versions.

Every command builds ``Settings()`` and gets the registry from ``churnops.wiring``. Reads
(list, show, search, audit, compare) never write: they run no migration and record nothing;
an alias moved in MLflow outside registry_ext is only reported (``churnops registry reconcile``
records it, and so do promote and rollback before they change anything). ``--json`` prints
exactly one JSON document on stdout (``{"error": ...}`` on failure). Errors exit with code 2 and
a one-line message (``commands.common.fail``), never a stack trace. Heavy imports happen inside
the commands so `churnops --help` stays fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churnops.commands.common import fail, load_settings, plain_text, safe_text
from churnops.contracts.stages import Stage, Trigger, choices

if TYPE_CHECKING:
    from churnops.settings import Settings
    from registry_ext import ModelRecord, ModelRegistry, PromotionResult, ReconcileReport, TransitionRecord
    from registry_ext.compare import Comparison

app = typer.Typer(
    help="Govern model versions: promote, audit, compare, search, rollback (MLflow + registry_ext).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Registered model name (default: CHURNOPS_MODEL_NAME / churn).")
]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who does this (default: CHURNOPS_ACTOR, else the OS user).")
]
TriggerOpt = Annotated[str, typer.Option("--trigger", help=f"Why: {choices(Trigger)}.")]


class _Failure(Exception):
    """An error to report as one line and exit code 2."""


def _emit(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))


def _warn(message: str) -> None:
    typer.echo(plain_text(message), err=True)


@contextmanager
def _errors(json_output: bool) -> Iterator[None]:
    """Turn every expected failure into a clear message and exit code 2 (``common.fail``)."""
    from mlflow.exceptions import MlflowException
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from churnops.contracts.artifacts import ArtifactIntegrityError
    from registry_ext import RegistryError

    try:
        yield
    except (
        RegistryError,
        ArtifactIntegrityError,
        ValidationError,
        SQLAlchemyError,
        MlflowException,
        _Failure,
        OSError,
    ) as error:
        text = error.message if isinstance(error, MlflowException) else str(error)
        message = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        if isinstance(error, SQLAlchemyError):
            message = f"registry database error: {message}"
        elif isinstance(error, MlflowException):
            message = f"MLflow: {message}"
        exit_ = fail(message, json_output=json_output)
        if isinstance(error, ArtifactIntegrityError):
            exit_.exit_code = 3  # refused by the integrity check (a gate), not bad input
        raise exit_ from None


def _report_reconcile(report: ReconcileReport) -> None:
    for transition in report.recorded:
        _warn(
            f"reconciled: version {transition.version} {_stage(transition.from_stage)} -> "
            f"{transition.to_stage.value} ({transition.reason})"
        )
    for warning in report.warnings:
        _warn(f"warning: {warning}")


def _warn_mismatches(registry: ModelRegistry) -> None:
    for alias, (table, mlflow) in registry.alias_mismatches().items():
        _warn(
            f"warning: MLflow alias {alias!r} points at {mlflow or 'nothing'} while the registry says "
            f"{table or 'nothing'}; `churnops registry reconcile` records the move"
        )


def _stage(stage: Any) -> str:
    return "-" if stage is None else str(stage.value)


def _run(
    json_output: bool,
    model: str | None,
    work: Callable[[ModelRegistry], None],
    *,
    write: bool,
    settings: Settings | None = None,
) -> None:
    """Open the registry (reads: no writes at all; writes: migrate, reconcile), then ``work``."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from churnops.wiring import open_registry

    settings = settings or load_settings(json_output=json_output)
    if model:
        settings = settings.model_copy(update={"model_name": model})
    with _errors(json_output), open_registry(settings, write=write) as registry:
        if write:
            _report_reconcile(registry.reconcile())
        else:
            _warn_mismatches(registry)
        work(registry)


# --- rendering ----------------------------------------------------------------------------


def _versions_table(records: list[ModelRecord], title: str) -> None:
    """The few columns a person scans for; `show VERSION` and `--json` have everything."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=safe_text(title))
    for column in ("name", "version", "stage", "created", "test ROC-AUC", "trigger", "sha256", "run"):
        table.add_column(column, justify="right" if column in ("version", "test ROC-AUC") else "left")
    for r in records:
        auc = r.metrics.get("test_roc_auc")
        table.add_row(
            safe_text(r.name),
            str(r.version),
            r.stage.value,
            r.created.strftime("%Y-%m-%d %H:%M"),
            "" if auc is None else f"{auc:.4f}",
            safe_text(r.tags.get("trigger", "")),
            r.sha256[:12],
            r.run_id[:12],
        )
    Console().print(table)


def _audit_table(transitions: list[TransitionRecord], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=safe_text(title))
    for column in ("time", "version", "from", "to", "actor", "trigger", "reason"):
        table.add_column(column)
    for t in transitions:
        table.add_row(
            t.time.strftime("%Y-%m-%d %H:%M:%S"),
            str(t.version),
            _stage(t.from_stage),
            t.to_stage.value,
            safe_text(t.actor),
            t.trigger,
            safe_text(t.reason),
        )
    Console().print(table)


def _comparison_tables(comparison: Comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for section in comparison.sections():
        table = Table(title=safe_text(section.title))
        table.add_column("")
        for header in section.headers:
            table.add_column(safe_text(header))
        for label, cells in section.rows:
            table.add_row(safe_text(label), *(safe_text(cell) for cell in cells))
        console.print(table)


def _show_promotion(record: ModelRecord, result: PromotionResult, json_output: bool) -> None:
    """What promote and rollback print: the version and every transition the change wrote."""
    if json_output:
        _emit(
            {
                "version": record.to_json(),
                "transition": result.transition.to_json(),
                "displaced": [t.to_json() for t in result.displaced],
            }
        )
        return
    for t in result.transitions:
        typer.echo(
            f"version {t.version}: {_stage(t.from_stage)} -> {t.to_stage.value} ({plain_text(t.reason)})"
        )


# --- commands -----------------------------------------------------------------------------


@app.command("promote")
def promote(
    version: Annotated[int, typer.Argument(help="Model version number.")],
    stage: Annotated[str, typer.Option("--stage", help=f"{choices(Stage)}.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required, recorded in the audit trail).")],
    actor: ActorOpt = None,
    trigger: TriggerOpt = "manual",
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Move VERSION to a stage; Production archives the previous Production version."""

    def work(registry: ModelRegistry) -> None:
        result = registry.change_stage(
            version=version, stage=stage, reason=reason, actor=actor or settings.actor, trigger=trigger
        )
        _show_promotion(registry.get(version), result, json_output)

    settings = load_settings(json_output=json_output)
    _run(json_output, model, work, write=True, settings=settings)


@app.command("rollback")
def rollback(
    reason: Annotated[str, typer.Option("--reason", help="Why (required, recorded in the audit trail).")],
    actor: ActorOpt = None,
    trigger: TriggerOpt = "manual",
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Return Production to the previous Production version."""

    def work(registry: ModelRegistry) -> None:
        result = registry.rollback(reason=reason, actor=actor or settings.actor, trigger=trigger)
        _show_promotion(registry.get(result.transition.version), result, json_output)

    settings = load_settings(json_output=json_output)
    _run(json_output, model, work, write=True, settings=settings)


@app.command("audit")
def audit(
    version: Annotated[int | None, typer.Option("--version", help="Only this version.")] = None,
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """The full, append-only history of stage changes."""

    def work(registry: ModelRegistry) -> None:
        transitions = registry.audit(version=version)
        if json_output:
            _emit([t.to_json() for t in transitions])
            return
        scope = f" version {version}" if version is not None else ""
        _audit_table(transitions, f"Audit trail of {registry.model_name!r}{scope}")

    _run(json_output, model, work, write=False)


@app.command("show")
def show(
    version: Annotated[int, typer.Argument(help="Model version number.")],
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """One version: stage, run, SHA-256, metrics, tags, gate results, history."""

    def work(registry: ModelRegistry) -> None:
        record = registry.get(version)
        transitions = registry.audit(version=version)
        if json_output:
            _emit({**record.to_json(), "transitions": [t.to_json() for t in transitions]})
            return
        _versions_table([record], f"{record.name} version {record.version}")
        typer.echo(f"sha256: {record.sha256}\nartifact: {plain_text(record.artifact_uri)}")
        # json.dumps escapes every control character (ensure_ascii): nothing raw reaches the terminal.
        typer.echo(f"gate results: {json.dumps(record.gate_results, default=str)}")
        _audit_table(transitions, "History")

    _run(json_output, model, work, write=False)


@app.command("list")
def list_versions(model: ModelOpt = None, json_output: JsonOpt = False) -> None:
    """Every version of the model, newest first."""

    def work(registry: ModelRegistry) -> None:
        records = registry.all_versions()
        if json_output:
            _emit([r.to_json() for r in records])
            return
        _versions_table(records, f"Versions of {registry.model_name!r}")

    _run(json_output, model, work, write=False)


def _parse_tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _Failure(f"--tag expects key=value, got {pair!r}")
        tags[key.strip()] = value.strip()
    return tags


@app.command("search")
def search(
    name: Annotated[str | None, typer.Option("--name", help="Model name; '*' is a wildcard.")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Version number.")] = None,
    stage: Annotated[str | None, typer.Option("--stage", help=f"{choices(Stage)}.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="key=value; repeat to require several.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many results.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Versions matching every given filter (all models unless --name), newest first."""

    def work(registry: ModelRegistry) -> None:
        records = registry.search(
            name=name, version=version, stage=stage, tags=_parse_tags(tag or []), limit=limit
        )
        if json_output:
            _emit([r.to_json() for r in records])
            return
        _versions_table(records, f"{len(records)} matching version(s)")

    _run(json_output, None, work, write=False)


@app.command("compare")
def compare(
    versions: Annotated[list[int], typer.Argument(help="Two or more version numbers.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
    ] = None,
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Metrics, deltas, params, features, data windows, gates and stages side by side."""

    def work(registry: ModelRegistry) -> None:
        from registry_ext.compare import compare_versions, write_html

        comparison = compare_versions(registry=registry, versions=versions)
        written = None
        if html is not None:
            written = write_html(comparison=comparison, path=html)
        if json_output:
            _emit({**comparison.to_json(), "html": None if written is None else str(written)})
            return
        _comparison_tables(comparison)
        if written is not None:
            typer.echo(f"HTML report: {plain_text(written)}")

    _run(json_output, model, work, write=False)


@app.command("reconcile")
def reconcile(model: ModelOpt = None, json_output: JsonOpt = False) -> None:
    """Record alias moves made in MLflow outside registry_ext (actor ``mlflow``) in the audit trail."""

    def work(registry: ModelRegistry) -> None:
        report = registry.reconcile()  # _run already reconciled; this reports the (now clean) state
        if json_output:
            _emit(
                {
                    "recorded": [t.to_json() for t in report.recorded],
                    "warnings": list(report.warnings),
                    "mismatches": {k: list(v) for k, v in registry.alias_mismatches().items()},
                }
            )
            return
        typer.echo("registry and MLflow aliases agree")

    _run(json_output, model, work, write=True)


@app.command("migrate")
def migrate(json_output: JsonOpt = False) -> None:
    """Create or upgrade the registry_ext tables in MLflow's backend database (idempotent)."""
    from churnops.wiring import migrate_registry

    settings = load_settings(json_output=json_output)
    with _errors(json_output):
        revision = migrate_registry(settings)
    if json_output:
        _emit({"revision": revision, "database": _redacted(settings.registry_db_url)})
        return
    typer.echo(f"registry_ext schema at revision {revision} in {_redacted(settings.registry_db_url)}")


def _redacted(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
