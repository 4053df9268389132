"""`churnops registry ...`: stages, audit trail, comparison, search and rollback of model versions.

Every command builds ``Settings()`` and gets the registry from ``churnops.wiring``. Reads
(list, show, search, audit, compare) never write: they run no migration and record nothing;
an alias moved in MLflow outside registry_ext is only reported (``churnops registry reconcile``
records it). Every write command first finishes or reverts the write-ahead intent of a writer
that died, records alias moves made in MLflow, and marks FAILED the MLflow runs left RUNNING
by a killed process. ``--json`` prints exactly one JSON document on stdout (``{"error": ...}``
on failure). Bad input exits 2, a refusal (the lifecycle, an unregistered version, an artifact
that does not verify, a state that changed meanwhile) exits 3, with a one-line message
(``commands.common.fail``), never a stack trace. Heavy imports happen inside the commands so
`churnops --help` stays fast.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churnops.commands import keys
from churnops.commands.common import fail, load_settings, plain_text, safe_text
from churnops.contracts.mlflow_keys import (
    DECISION_TAG,
    DRIFT_REPORT_TAG,
    RETRAIN_TRIGGER_TAG,
    TEST_ROC_AUC,
    TRAINING_LABELS_END_TAG,
    TRAINING_LABELS_START_TAG,
    VERSION_TRIGGER_TAG,
)
from churnops.contracts.stages import Stage, Trigger, choices

if TYPE_CHECKING:
    from churnops.settings import Settings
    from registry_ext import (
        IntentRecord,
        ModelRecord,
        ModelRegistry,
        PromotionResult,
        ReconcileReport,
        TransitionRecord,
        UnregisteredVersion,
    )
    from registry_ext.compare import Comparison

app = typer.Typer(
    help="Govern model versions: promote, audit, compare, search, rollback (MLflow + registry_ext).",
    no_args_is_help=True,
)
app.add_typer(keys.app, name="keys")

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


class _Refused(Exception):
    """A state to report as one line and exit code 3."""


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
    from registry_ext import RefusedError, RegistryError

    try:
        yield
    except (
        RegistryError,
        ArtifactIntegrityError,
        ValidationError,
        SQLAlchemyError,
        MlflowException,
        _Failure,
        _Refused,
        OSError,
    ) as error:
        text = error.message if isinstance(error, MlflowException) else str(error)
        message = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        if isinstance(error, SQLAlchemyError):
            message = f"registry database error: {message}"
        elif isinstance(error, MlflowException):
            message = f"MLflow: {message}"
        exit_ = fail(message, json_output=json_output)
        if isinstance(error, ArtifactIntegrityError | RefusedError | _Refused):
            exit_.exit_code = 3  # refused by a check or by the registry's state, not bad input
        raise exit_ from None


def _report_reconcile(report: ReconcileReport) -> None:
    for intent in report.recovered:
        _warn(
            f"recovered: interrupted {intent.kind} #{intent.id} by {intent.actor} "
            f"({intent.reason}): {intent.status}"
        )
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
    for intent in registry.intents(pending_only=True):
        _warn(
            f"warning: {intent.kind} #{intent.id} by {intent.actor} did not finish (its process died?); "
            "`churnops registry reconcile` finishes or reverts it"
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
    recover: bool = True,
) -> None:
    """Open the registry (reads: no writes at all; writes: migrate, recover, reconcile, fail
    stale runs), then ``work``."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from churnops.wiring import open_registry

    settings = settings or load_settings(json_output=json_output)
    if model:
        settings = settings.model_copy(update={"model_name": model})
    with _errors(json_output), open_registry(settings, write=write) as registry:
        if write and recover:
            _report_reconcile(registry.reconcile())
        if write:
            for run in registry.fail_stale_runs(now=settings.clock):
                _warn(
                    f"marked MLflow run {run.run_id} FAILED: left RUNNING with no sign of life since "
                    f"{run.last_seen:%Y-%m-%d %H:%M} UTC"
                )
        else:
            _warn_mismatches(registry)
        work(registry)


# --- rendering ----------------------------------------------------------------------------


def _versions_table(
    records: list[ModelRecord], title: str, unregistered: list[UnregisteredVersion] | None = None
) -> None:
    """The few columns a person scans for, readable at 80 columns; `show VERSION` and `--json`
    have everything (the model name is in the title unless several models are listed).
    Versions MLflow holds without a registry row are listed too, as ``unregistered``."""
    from rich.console import Console

    from churnops.commands.tables import add_column, compact_table

    names = sorted({r.name for r in records})
    table = compact_table(title)
    if len(names) > 1:
        add_column(table, "model")
    add_column(table, "version", right=True, keep=True)
    add_column(table, "stage", keep=True)
    add_column(table, "created (UTC)", keep=True)
    add_column(table, "ROC-AUC", right=True, keep=True)
    add_column(table, "trigger")
    add_column(table, "sha256", keep=True)
    for r in records:
        auc = r.metrics.get(TEST_ROC_AUC)  # absent on a version adopted from a run without it
        row = [safe_text(r.name)] if len(names) > 1 else []
        row += [
            str(r.version),
            r.stage.value,
            r.created.strftime("%Y-%m-%d %H:%M"),
            "" if auc is None else f"{auc:.4f}",
            safe_text(r.tags.get(VERSION_TRIGGER_TAG, "")),  # absent on an adopted version
            r.sha256[:8],
        ]
        table.add_row(*row)
    for u in unregistered or []:
        row = [safe_text(u.name)] if len(names) > 1 else []
        row += [str(u.version), "[red]unregistered[/red]", u.created.strftime("%Y-%m-%d %H:%M"), "", "", "-"]
        table.add_row(*row)
    Console().print(table)


def _gate_summary(gates: Any) -> str:
    """Gate results in a few characters: ``5/5 pass``, ``FAIL: rule``, ``adopted`` or ``-``."""
    if not isinstance(gates, dict):
        return "-" if gates is None else "recorded"
    if gates.get("adopted"):
        return "adopted (sha ok)"
    results = gates.get("results", gates.get("checks"))
    if isinstance(results, list) and results:
        rows = [r for r in results if isinstance(r, dict)]
        failed = [
            str(r.get("rule", r.get("name", "?")))
            for r in rows
            if not r.get("passed") and not r.get("skipped")
        ]
        if failed:
            return "FAIL: " + ", ".join(failed)
        skipped = sum(1 for r in rows if r.get("skipped"))
        passed = sum(1 for r in rows if r.get("passed") and not r.get("skipped"))
        return f"{passed}/{len(rows) - skipped} pass" + (f", {skipped} skip" if skipped else "")
    if "passed" in gates:
        return "pass" if gates.get("passed") else "FAIL"
    return "recorded"


def _audit_table(transitions: list[TransitionRecord], title: str) -> None:
    """One row per transition, gate results included; fits 80 columns (long text folds)."""
    from rich.console import Console

    from churnops.commands.tables import add_column, compact_table

    table = compact_table(title)
    add_column(table, "time (UTC)", keep=True)
    add_column(table, "v", right=True, keep=True)
    add_column(table, "change")
    add_column(table, "by")
    add_column(table, "gates")
    add_column(table, "reason")
    for t in transitions:
        table.add_row(
            t.time.strftime("%m-%d %H:%M"),
            str(t.version),
            f"{_stage(t.from_stage)} -> {t.to_stage.value}",
            f"{safe_text(t.actor)} ({t.trigger})",
            safe_text(_gate_summary(t.gate_results)) if t.from_stage is None else "",
            safe_text(t.reason),
        )
    Console().print(table)


def _intents_table(intents: list[IntentRecord], title: str) -> None:
    """Registry actions that are not stage changes, and stage changes that did not complete."""
    from rich.console import Console

    from churnops.commands.tables import add_column, compact_table

    table = compact_table(title)
    add_column(table, "#", right=True, keep=True)
    add_column(table, "time (UTC)", keep=True)
    add_column(table, "action")
    add_column(table, "by")
    add_column(table, "status", keep=True)
    add_column(table, "reason / outcome")
    for i in intents:
        table.add_row(
            str(i.id),
            i.created.strftime("%m-%d %H:%M"),
            safe_text(_intent_label(i)),
            safe_text(i.actor),
            i.status,
            safe_text(i.reason + (f" -> {i.outcome}" if i.outcome else "")),
        )
    Console().print(table)


def _intent_label(intent: IntentRecord) -> str:
    """A short name for an intent's action: ``delete v3``, ``adopt v3``, ``fail run``, ``promote``."""
    version = intent.target.get("version")
    short = {"delete_unregistered": "delete", "fail_run": "fail run"}.get(intent.kind, intent.kind)
    return f"{short} v{version}" if version is not None else short


def _notable(intents: list[IntentRecord]) -> list[IntentRecord]:
    """Intents the transitions table does not already tell: not a plain completed stage change."""
    return [
        i for i in intents if not (i.status == "completed" and i.kind in ("promote", "rollback", "reconcile"))
    ]


def _gates_table(gates: Any) -> None:
    """The gate results recorded at registration, one rule per row."""
    from rich.console import Console

    from churnops.commands.tables import add_column, compact_table

    console = Console()
    results = gates.get("results") if isinstance(gates, dict) else None
    if not isinstance(results, list) or not results:
        console.print(f"gate results: {safe_text(json.dumps(gates, default=str))}")
        return
    policy = gates.get("policy", "?")
    verdict = "passed" if gates.get("passed") else "FAILED"
    table = compact_table(f"Quality gates at registration ({policy}): {verdict}")
    add_column(table, "rule")
    add_column(table, "result", keep=True)
    add_column(table, "detail")
    for r in results:
        if not isinstance(r, dict):
            continue
        result = (
            "[yellow]skipped[/yellow]"
            if r.get("skipped")
            else "[green]pass[/green]"
            if r.get("passed")
            else "[red]FAIL[/red]"
        )
        table.add_row(safe_text(str(r.get("rule", "?"))), result, safe_text(str(r.get("detail", ""))))
    console.print(table)


def _comparison_tables(comparison: Comparison, *, details: bool) -> None:
    """Verdict and the headline on the same rows first; the details only with --details."""
    from rich.console import Console

    from churnops.commands.tables import add_column, compact_table
    from churnops.contracts.metric_directions import improvement
    from registry_ext.compare import SectionId, format_interval

    console = Console()
    for verdict in comparison.verdicts:
        colour = {"better": "green", "worse": "red"}.get(verdict.outcome, "yellow")
        console.print(
            f"[bold {colour}]{safe_text(verdict.outcome)}[/bold {colour}]: {safe_text(verdict.text)}"
        )
    for note in comparison.notes:
        console.print(f"[yellow]note[/yellow]: {safe_text(note)}")
    result = comparison.bootstrap
    if result is not None:
        table = compact_table(
            f"Same {comparison.holdout_rows:,} rows ({comparison.holdout_positives:,} churned), "
            f"{round(result.confidence * 100)}% bootstrap CI",
        )
        add_column(table, "metric")
        for header in comparison.headers:
            add_column(table, header, right=True)
        for version in comparison.others:
            add_column(table, f"v{version} - v{comparison.baseline}", right=True)
        for label, cells in comparison.headline_rows():
            metric = next(k for k, v in _metric_labels().items() if v == label)
            row = [label]
            for interval, is_delta in cells:
                estimate, span = format_interval(interval, signed=is_delta)
                style = ""
                if is_delta and interval is not None and interval.estimate:
                    style = "green" if improvement(metric, interval.estimate) > 0 else "red"
                text = f"[{style}]{estimate}[/{style}]" if style else estimate
                row.append(f"{text}\n[dim]{span}[/dim]" if span else text)
            table.add_row(*row)
        console.print(table)
    if comparison.slices:
        slices = compact_table("ROC-AUC per slice (same rows)")
        add_column(slices, "slice")
        add_column(slices, "rows", right=True, keep=True)
        for header in comparison.headers:
            add_column(slices, header, right=True)
        for version in comparison.others:
            add_column(slices, f"v{version} - v{comparison.baseline}", right=True)
        for s in comparison.slices:
            row = [safe_text(s.name), f"{s.rows:,}"]
            row.extend(
                "-" if s.roc_auc.get(r.version) is None else f"{s.roc_auc[r.version]:.3f}"
                for r in comparison.versions
            )
            for version in comparison.others:
                delta = s.delta.get(version)
                colour = "green" if delta and delta > 0 else "red" if delta and delta < 0 else ""
                cell = "-" if delta is None else f"{delta:+.3f}"
                row.append(f"[{colour}]{cell}[/{colour}]" if colour else cell)
            slices.add_row(*row)
        console.print(slices)
    sections = comparison.detail_sections()
    if not details:
        sections = [s for s in sections if s.id is SectionId.GATES]
    for section in sections:
        table = compact_table(section.title)
        add_column(table, "")
        for header in section.headers:
            add_column(table, header)
        for name, values in section.rows:
            table.add_row(safe_text(name), *(safe_text(value) for value in values))
        console.print(table)
    if not details:
        console.print(
            "[dim]params, data windows, features and own-test metrics: --details, --html or --json[/dim]"
        )


def _metric_labels() -> dict[str, str]:
    from registry_ext.compare import METRIC_LABELS

    return METRIC_LABELS


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
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            min=1,
            help="Return this Archived version (one that was in Production before) instead; "
            "back or forward. Its artifact is verified again.",
        ),
    ] = None,
    actor: ActorOpt = None,
    trigger: TriggerOpt = "manual",
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Return Production to the previous Production version (or to --to VERSION)."""

    def work(registry: ModelRegistry) -> None:
        result = registry.rollback(reason=reason, actor=actor or settings.actor, trigger=trigger, to=to)
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
        intents = registry.intents() if version is None else []
        if json_output:
            _emit([t.to_json() for t in transitions])
            return
        scope = f" version {version}" if version is not None else ""
        _audit_table(transitions, f"Audit trail of {registry.model_name!r}{scope}")
        if _notable(intents):
            _intents_table(_notable(intents), "Other registry actions (adopt, delete, recovery, runs)")

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
        typer.echo(
            f"sha256: {record.sha256}\nrun: {record.run_id}\nartifact: {plain_text(record.artifact_uri)}"
        )
        _provenance_table(record.tags)
        _gates_table(record.gate_results)
        _audit_table(transitions, "History")

    _run(json_output, model, work, write=False)


PROVENANCE = (
    (RETRAIN_TRIGGER_TAG, "trigger"),
    (DECISION_TAG, "retrain decision"),
    (DRIFT_REPORT_TAG, "drift report"),
    (TRAINING_LABELS_START_TAG, "labels from"),
    (TRAINING_LABELS_END_TAG, "labels to"),
)
"""A retrained version's provenance tags (a version trained by hand has none, and shows none)."""


def _provenance_table(tags: dict[str, str]) -> None:
    """Why a retrained version exists: its trigger, decision, drift report and training window."""
    from rich.console import Console
    from rich.table import Table

    rows = [(label, tags[key]) for key, label in PROVENANCE if key in tags]
    if not rows:
        return
    table = Table(title="Provenance", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for label, value in rows:
        table.add_row(label, safe_text(value))
    Console().print(table)


@app.command("list")
def list_versions(model: ModelOpt = None, json_output: JsonOpt = False) -> None:
    """Every version of the model, newest first."""

    def work(registry: ModelRegistry) -> None:
        records = registry.all_versions()
        hidden = registry.unregistered()
        for u in hidden:
            _warn(
                f"warning: version {u.version} is in MLflow but not registered: `churnops registry "
                f"adopt {u.version} --reason ...` or `churnops registry delete-unregistered "
                f"{u.version} --reason ...`"
            )
        if json_output:
            _emit(
                sorted(
                    [r.to_json() for r in records] + [u.to_json() for u in hidden],
                    key=lambda d: -d["version"],
                )
            )
            return
        _versions_table(records, f"Versions of {registry.model_name!r}", hidden)

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
    details: Annotated[
        bool, typer.Option("--details", help="Also print params, data windows, features, own-test metrics.")
    ] = False,
    resamples: Annotated[
        int, typer.Option("--resamples", min=1, help="Bootstrap resamples for the confidence intervals.")
    ] = 1000,
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Which version is better on the same rows (with bootstrap CIs), then the details."""

    from churnops.training import GatePolicyError, load_policy

    settings = load_settings(json_output=json_output)

    def work(registry: ModelRegistry) -> None:
        from registry_ext.compare import compare_versions
        from registry_ext.compare_html import write_html

        try:
            slices = load_policy(settings.gate_policy).slice_specs()
        except GatePolicyError as error:
            raise _Failure(str(error)) from error
        comparison = compare_versions(
            registry=registry, versions=versions, slices=slices, resamples=resamples
        )
        written = None
        if html is not None:
            written = write_html(comparison=comparison, path=html)
        if json_output:
            _emit({**comparison.to_json(), "html": None if written is None else str(written)})
            return
        _comparison_tables(comparison, details=details)
        if written is not None:
            typer.echo(f"HTML report: {plain_text(written)}")

    _run(json_output, model, work, write=False, settings=settings)


@app.command("reconcile")
def reconcile(model: ModelOpt = None, json_output: JsonOpt = False) -> None:
    """Finish or revert interrupted registry writes, record alias moves made in MLflow (actor
    ``mlflow``), and report what still disagrees (exit 3, naming the fix)."""

    def work(registry: ModelRegistry) -> None:
        report = registry.reconcile()
        _report_reconcile(report)  # stderr: the JSON document on stdout stays one document
        if json_output:
            _emit(
                {
                    "agree": report.agrees,
                    "recovered": [i.to_json() for i in report.recovered],
                    "recorded": [t.to_json() for t in report.recorded],
                    "warnings": list(report.warnings),
                    "mismatches": {k: list(v) for k, v in report.mismatches.items()},
                    "unregistered": list(report.unregistered),
                }
            )
        if not report.agrees:
            fixes = "; ".join(
                [
                    f"alias {a!r}: registry {t or 'nothing'}, MLflow {m or 'nothing'}"
                    for a, (t, m) in report.mismatches.items()
                ]
                + [f"version {v} unregistered" for v in report.unregistered]
            )
            if not json_output:
                typer.echo(f"registry and MLflow disagree: {plain_text(fixes)}", err=True)
            raise typer.Exit(code=3)
        if not json_output:
            typer.echo("registry and MLflow aliases agree")

    _run(json_output, model, work, write=True, recover=False)


@app.command("adopt")
def adopt(
    version: Annotated[int, typer.Argument(help="A version MLflow holds that the registry does not.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required, recorded in the audit trail).")],
    actor: ActorOpt = None,
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Register an unregistered MLflow version after verifying its artifact (as registration does)."""

    def work(registry: ModelRegistry) -> None:
        record = registry.adopt(version=version, reason=reason, actor=actor or settings.actor)
        if json_output:
            _emit(record.to_json())
            return
        typer.echo(
            f"version {record.version}: adopted (sha256 {record.sha256[:12]} verified, signed), stage None"
        )

    settings = load_settings(json_output=json_output)
    _run(json_output, model, work, write=True, settings=settings)


@app.command("delete-unregistered")
def delete_unregistered(
    version: Annotated[int, typer.Argument(help="A version MLflow holds that the registry does not.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required, recorded in the audit trail).")],
    actor: ActorOpt = None,
    model: ModelOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Delete an unregistered MLflow version (registered versions are archived, never deleted)."""

    def work(registry: ModelRegistry) -> None:
        intent = registry.delete_unregistered(version=version, reason=reason, actor=actor or settings.actor)
        if json_output:
            _emit(intent.to_json())
            return
        typer.echo(f"version {version}: deleted from MLflow ({plain_text(intent.outcome or '')})")

    settings = load_settings(json_output=json_output)
    _run(json_output, model, work, write=True, settings=settings)


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
    from churnops.contracts.redaction import redact

    return redact(url)
