"""`churnops retrain check|run`: decide whether to retrain, and retrain.

``check`` evaluates the retraining policy on the latest monitoring results (the drift reports
``churnops monitor drift`` logged to MLflow for the Production version; ``--refresh`` runs one
first) and the past decisions, and appends the decision to ``retrain_decisions``. Exit codes:
0 fired (a retrain is due), 3 not due (suppressed or nothing fired), 2 bad input. So a cron line
``churnops retrain check && churnops retrain run`` retrains exactly when the policy says so.

``run`` retrains on the policy's sliding window (or ``--start/--end``): without ``--trigger`` it
acts on the latest decision, which must have fired; with ``--trigger`` it records its own fired
decision (a forced retrain, still counted by the cooldown and the cap). Exit codes: 0 registered
(and promoted per the policy), 3 refused: gates failed (nothing registered, Production
unchanged) or another retrain of the model is running (the JSON says ``busy``), 2 bad input.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from churnops.commands.common import fail, load_settings, option_time, quiet_libraries
from churnops.commands.train import GATES_FAILED_EXIT
from churnops.contracts.stages import Trigger, choices

if TYPE_CHECKING:
    from churnops.retraining import RetrainPolicy
    from churnops.retraining.run import RetrainResult
    from churnops.settings import Settings
    from registry_ext import ModelRegistry
    from registry_ext.decisions import DecisionRecord

NOT_DUE_EXIT = 3  # refused by the policy (the codes are 0 ok, 2 bad input, 3 refused)
BUSY_EXIT = 3  # refused: another retrain of this model holds the lock (the JSON says "busy")
ACTOR_DEFAULT = "churnops-retrain"

app = typer.Typer(help="Retraining: check the policy on the latest monitoring results, and retrain.")

PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Retraining policy YAML (default: CHURNOPS_RETRAIN_POLICY, else the packaged one).",
    ),
]
NowOpt = Annotated[
    str | None, typer.Option("--now", help="Evaluate as of this time (ISO 8601; default: now).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def _policy(path: Path | None, json_output: bool) -> RetrainPolicy:
    from churnops.retraining import RetrainPolicyError, load_policy

    try:
        return load_policy(path)
    except RetrainPolicyError as error:
        raise fail(str(error), json_output=json_output) from None


def _expected_errors() -> tuple[type[BaseException], ...]:
    from churnops.commands.train import _expected_errors as train_errors

    return (*train_errors(), ValueError)


def _message(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@app.command("check")
def check(
    policy: PolicyOpt = None,
    now: NowOpt = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Run a drift report on the latest window first.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Evaluate the retraining policy and record the decision (exit 0 fired, 3 not due)."""
    settings = load_settings(json_output=json_output)
    rules = _policy(policy or settings.retrain_policy, json_output)
    moment = option_time(now, option="--now", json_output=json_output) or datetime.now(UTC)
    try:
        record = _check(settings=settings, policy=rules, now=moment, refresh=refresh)
    except _expected_errors() as error:
        raise fail(_message(error), json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({"decision": record.to_dict()}, default=str, allow_nan=False))
    else:
        _print_decision(record)
    if not record.fired:
        raise typer.Exit(code=NOT_DUE_EXIT)


def _check(*, settings: Settings, policy: RetrainPolicy, now: datetime, refresh: bool) -> DecisionRecord:
    from churnops.retraining import PastDecision, decide
    from churnops.retraining.observations import read_monitoring_windows
    from churnops.wiring import open_registry
    from registry_ext.decisions import append_decision, list_decisions

    quiet_libraries()
    with open_registry(settings, write=True) as registry:
        production = registry.production()
        windows = []
        reference = None
        if production is not None:
            version = str(production.version)
            if refresh:
                from churnops.commands.monitor import drift_report

                drift_report(settings=settings, version=version)
            windows = read_monitoring_windows(
                client=registry.client, model_name=settings.model_name, model_version=version
            )
            reference = production.metrics.get("test_roc_auc")
        past = [
            PastDecision(time=d.time, fired=d.fired, trigger=d.trigger)
            for d in list_decisions(registry.engine, name=settings.model_name)
        ]
        decision = decide(policy=policy, now=now, windows=windows, past=past, reference_roc_auc=reference)
        doc = decision.to_dict()
        return append_decision(
            registry.engine,
            name=settings.model_name,
            time=decision.time,
            fired=decision.fired,
            trigger=decision.trigger,
            suppressed_by=decision.suppressed_by,
            model_version=decision.model_version or (None if production is None else str(production.version)),
            report=decision.report,
            policy=policy.label(),
            actor=settings.actor or ACTOR_DEFAULT,
            reasons=doc["reasons"],
        )


def _print_decision(record: DecisionRecord) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    verdict = (
        f"[green]fired[/green] ({record.trigger.value if record.trigger else '-'})"
        if record.fired
        else "[yellow]not due[/yellow]"
        + (f" (suppressed by {record.suppressed_by})" if record.suppressed_by else "")
    )
    console.print(f"decision [bold]{record.id}[/bold] at {record.time:%Y-%m-%d %H:%M} UTC: {verdict}")
    table = Table(title=escape(f"Checks (policy {record.policy}; report {record.report or 'none'})"))
    for column in ("trigger", "check", "met", "detail"):
        table.add_column(column)
    for reason in record.reasons:
        table.add_row(
            reason["trigger"], reason["check"], "yes" if reason["met"] else "", escape(reason["detail"])
        )
    console.print(table)


@app.command("run")
def run(
    trigger: Annotated[
        str | None,
        typer.Option(
            "--trigger",
            help=f"Force a retrain for this reason ({choices(Trigger)}); "
            "default: act on the latest decision, which must have fired.",
        ),
    ] = None,
    policy: PolicyOpt = None,
    gate_policy: Annotated[
        Path | None, typer.Option("--gate-policy", help="Gate policy YAML (default: CHURNOPS_GATE_POLICY).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Window start (default: now - window_days).")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="Window end (default: now).")] = None,
    now: NowOpt = None,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for a running retrain (default: refuse).")
    ] = 0.0,
    materialize_online: Annotated[
        bool, typer.Option("--materialize", help="Materialize the online store at the window end first.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Retrain on the window, gate against Production on the same rows, register and promote."""
    forced = None
    if trigger is not None:
        try:
            forced = Trigger.parse(trigger)
        except ValueError as error:
            raise fail(f"--trigger: {error}", json_output=json_output) from None
    settings = load_settings(json_output=json_output)
    rules = _policy(policy or settings.retrain_policy, json_output)
    moment = option_time(now, option="--now", json_output=json_output) or datetime.now(UTC)
    window_end = option_time(end, option="--end", json_output=json_output) or moment
    window_start = option_time(start, option="--start", json_output=json_output) or (
        window_end - timedelta(days=rules.window_days)
    )
    if window_start >= window_end:
        raise fail(
            f"--start {window_start.isoformat()} must be before --end {window_end.isoformat()}",
            json_output=json_output,
        )
    from churnops.retraining.run import RetrainBusyError

    try:
        result = _run(
            settings=settings,
            policy=rules,
            gate_policy=gate_policy,
            forced=forced,
            start=window_start,
            end=window_end,
            now=moment,
            wait=wait,
            materialize_online=materialize_online,
        )
    except RetrainBusyError as error:
        if json_output:
            typer.echo(json.dumps({"error": str(error), "busy": True}))
        else:
            typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=BUSY_EXIT) from None
    except _expected_errors() as error:
        raise fail(_message(error), json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps(result.to_dict(), default=str, allow_nan=False))
    else:
        from churnops.commands.train import _print_summary

        _print_summary(result.train)
        typer.echo(f"retrain ({result.trigger.value}, decision {result.decision_id}): {result.message}")
    if not result.registered:
        raise typer.Exit(code=GATES_FAILED_EXIT)


def _decision_to_act_on(
    *,
    registry: ModelRegistry,
    settings: Settings,
    policy: RetrainPolicy,
    forced: Trigger | None,
    now: datetime,
) -> DecisionRecord:
    from registry_ext.decisions import append_decision, list_decisions

    if forced is not None:
        return append_decision(
            registry.engine,
            name=settings.model_name,
            time=now,
            fired=True,
            trigger=forced,
            suppressed_by=None,
            model_version=None,
            report=None,
            policy=policy.label(),
            actor=settings.actor or ACTOR_DEFAULT,
            reasons=[
                {
                    "trigger": forced.value,
                    "check": "requested",
                    "met": True,
                    "detail": "retrain requested with churnops retrain run --trigger",
                }
            ],
        )
    latest = list_decisions(registry.engine, name=settings.model_name, limit=1)
    if not latest or not latest[0].fired:
        raise ValueError(
            "the latest retrain decision did not fire (or there is none): run `churnops retrain check` "
            "first, or force one with --trigger manual"
        )
    decision = latest[0]
    for record in registry.all_versions():
        if record.tags.get("churnops.decision_id") == str(decision.id):
            raise ValueError(
                f"decision {decision.id} already produced version {record.version}; run "
                "`churnops retrain check` again, or force a retrain with --trigger manual"
            )
    return decision


def _run(
    *,
    settings: Settings,
    policy: RetrainPolicy,
    gate_policy: Path | None,
    forced: Trigger | None,
    start: datetime,
    end: datetime,
    now: datetime,
    wait: float,
    materialize_online: bool,
) -> RetrainResult:
    from churnops.retraining.run import TrainingWindow, run_retrain
    from churnops.training import load_policy as load_gate_policy
    from churnops.wiring import feature_store, open_registry

    quiet_libraries()
    gates = load_gate_policy(gate_policy or settings.gate_policy)
    window = TrainingWindow(start=start, end=end)
    with open_registry(settings, write=True) as registry:
        decision = _decision_to_act_on(
            registry=registry, settings=settings, policy=policy, forced=forced, now=now
        )
        assert decision.trigger is not None
        return run_retrain(
            store=feature_store(settings),
            registry=registry,
            sources_dir=settings.sources_dir,
            policy=policy,
            gate_policy=gates,
            trigger=decision.trigger,
            decision_id=decision.id,
            window=window,
            now=now,
            drift_report=decision.report,
            actor=settings.actor,
            materialize_online=materialize_online,
            lock_timeout_s=wait,
            artifact_location=settings.artifact_location,
        )
