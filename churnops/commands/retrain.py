"""`churnops retrain check|run`: decide whether to retrain, and retrain.

``check`` evaluates the retraining policy on the latest monitoring results (the drift reports
``churnops monitor drift`` logged to MLflow for the Production version; ``--refresh`` runs one
first) and the past decisions, and appends the decision to ``retrain_decisions``, printing its
id. Exit codes: 0 a retrain is due (this decision fired, or an earlier fired one is still
pending: the output names it), 3 not due (suppressed or nothing fired), 2 bad input (a ``--now``
in the future). So a cron line ``churnops retrain check && churnops retrain run`` retrains
exactly when the policy says so, and finishes a retrain that crashed.

``run`` retrains on the policy's sliding window (or ``--start/--end``): with ``--decision N`` it
acts on that decision; without, on the newest fired decision not finished yet, resumed from the
step a crashed run reached; with ``--trigger`` it records its own fired decision (a forced
retrain, counted by the cooldown and the cap once it finishes). Exit codes: 0 registered (and
promoted per the policy), 3 refused: the gates failed (nothing registered, Production
unchanged), the decision did not fire or was already acted on, another retrain of the model is
running (the JSON says ``busy``), or this run lost its lease (``lease_lost``); 2 bad input.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from churnops.commands.common import fail, load_settings, option_time, pinned_now, quiet_libraries
from churnops.commands.common import safe_text as escape
from churnops.commands.train import GATES_FAILED_EXIT
from churnops.contracts.stages import Trigger, choices
from churnops.jobs import check_retrain, pending_retrain, retrain

if TYPE_CHECKING:
    from churnops.retraining import RetrainPolicy
    from churnops.settings import Settings
    from registry_ext.decisions import DecisionRecord

NOT_DUE_EXIT = 3  # refused by the policy (the codes are 0 ok, 2 bad input, 3 refused)
BUSY_EXIT = 3  # refused: another retrain of this model holds the lease (the JSON says "busy")
REFUSED_EXIT = 3  # refused: the decision did not fire, was acted on, or the lease was lost

app = typer.Typer(help="Retraining: check the policy on the latest monitoring results, and retrain.")

PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Retraining policy YAML (default: CHURNOPS_RETRAIN_POLICY, else the packaged one).",
    ),
]
NowOpt = Annotated[
    str | None,
    typer.Option("--now", help="Evaluate as of this time (ISO 8601; default: CHURNOPS_NOW, else now)."),
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
    first = text.splitlines()[0] if text else type(error).__name__
    notes = [str(note) for note in getattr(error, "__notes__", ())]
    return "; ".join([first, *notes])


def _refuse(message: str, *, json_output: bool, **flags: bool) -> typer.Exit:
    if json_output:
        typer.echo(json.dumps({"error": message, **flags}))
    else:
        typer.echo(f"refused: {escape(message)}", err=True)
    return typer.Exit(code=REFUSED_EXIT)


def _moment(now: str | None, settings: Settings, *, json_output: bool) -> datetime:
    """``--now`` (refused with exit 2 when in the future), else CHURNOPS_NOW, else the clock."""
    return pinned_now(now, json_output=json_output) if now is not None else settings.clock


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
    moment = _moment(now, settings, json_output=json_output)
    quiet_libraries()
    try:
        record = check_retrain(settings=settings, policy=rules, now=moment, refresh=refresh)
        pending = pending_retrain(settings=settings)
    except _expected_errors() as error:
        raise fail(_message(error), json_output=json_output) from None
    waiting = None if pending is None or pending.id == record.id else pending
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "decision": record.to_dict(),
                    "pending": None if waiting is None else {"id": waiting.id, "state": waiting.state.value},
                    "counts": _counts(record),
                },
                default=str,
                allow_nan=False,
            )
        )
    else:
        _print_decision(record)
        if waiting is not None:
            typer.echo(
                f"decision {waiting.id} fired and is {waiting.state.value}, not finished: "
                f"`churnops retrain run --decision {waiting.id}` finishes it"
            )
    if not record.fired and waiting is None:
        raise typer.Exit(code=NOT_DUE_EXIT)


def _counts(record: DecisionRecord) -> dict[str, object] | None:
    """The monitoring vocabulary's counts of the window the decision was taken on."""
    from churnops.retraining.decide import decision_counts

    counts = decision_counts(record.reasons)
    return {"model_version": record.model_version, "report": record.report, **counts} if counts else None


def _print_decision(record: DecisionRecord) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    verdict = (
        f"[green]fired[/green] ({record.trigger.value if record.trigger else '-'})"
        if record.fired
        else "[yellow]not due[/yellow]"
        + (f" (suppressed by {record.suppressed_by})" if record.suppressed_by else "")
    )
    console.print(f"decision [bold]{record.id}[/bold] at {record.time:%Y-%m-%d %H:%M} UTC: {verdict}")
    counts = _counts(record)
    if counts is not None:
        from churnops.contracts.monitoring_terms import DRIFTED_SHARE, DRIFTED_WINDOWS, MATURED_LABELS, TERMS

        share = counts[DRIFTED_SHARE]
        console.print(
            f"v{escape(str(counts['model_version']))}: {TERMS[MATURED_LABELS]} {counts[MATURED_LABELS]:,}; "
            f"{TERMS[DRIFTED_SHARE]} {'n/a' if share is None else f'{share:.4f}'}; "
            f"{TERMS[DRIFTED_WINDOWS]} {counts[DRIFTED_WINDOWS]} (in a row)"
        )
    if record.fired:
        console.print(f"retrain it with: churnops retrain run --decision {record.id}")
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
            "default: act on the newest fired decision not finished yet.",
        ),
    ] = None,
    decision: Annotated[
        int | None,
        typer.Option(
            "--decision", min=1, help="Act on this decision (the id `retrain check` prints); resumes it."
        ),
    ] = None,
    policy: PolicyOpt = None,
    gate_policy: Annotated[
        Path | None, typer.Option("--gate-policy", help="Gate policy YAML (default: CHURNOPS_GATE_POLICY).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="Window start (default: the window end - the policy's window_days)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Window end (default: now - the policy's label_maturity_days)."),
    ] = None,
    now: NowOpt = None,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for a running retrain (default: refuse).")
    ] = 0.0,
    materialize_online: Annotated[
        bool, typer.Option("--materialize", help="Materialize the online store as of now first.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Retrain on the window, gate against Production on the same rows, register and promote."""
    forced = None
    if trigger is not None and decision is not None:
        raise fail("--trigger and --decision: give one of them, not both", json_output=json_output)
    if trigger is not None:
        try:
            forced = Trigger.parse(trigger)
        except ValueError as error:
            raise fail(f"--trigger: {error}", json_output=json_output) from None
    settings = load_settings(json_output=json_output)
    rules = _policy(policy or settings.retrain_policy, json_output)
    moment = _moment(now, settings, json_output=json_output)
    window_end = option_time(end, option="--end", json_output=json_output)
    window_start = option_time(start, option="--start", json_output=json_output)
    from churnops.retraining.run import TrainingWindow, policy_window

    default = policy_window(policy=rules, now=moment)
    try:
        window = TrainingWindow(start=window_start or default.start, end=window_end or default.end)
    except ValueError as error:
        raise fail(f"--start/--end: {error}", json_output=json_output) from None
    from churnops.retraining.orders import DecisionRefusedError
    from churnops.retraining.run import RetrainBusyError, RetrainLeaseLostError

    try:
        quiet_libraries()
        result = retrain(
            settings=settings,
            policy=rules,
            gate_policy=gate_policy,
            forced=forced,
            decision_id=decision,
            now=moment,
            window=window,
            wait_s=wait,
            materialize_online=materialize_online,
        )
    except RetrainBusyError as error:
        if json_output:
            typer.echo(json.dumps({"error": str(error), "busy": True}))
        else:
            typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=BUSY_EXIT) from None
    except RetrainLeaseLostError as error:
        raise _refuse(_message(error), json_output=json_output, lease_lost=True) from None
    except DecisionRefusedError as error:
        raise _refuse(_message(error), json_output=json_output) from None
    except _expected_errors() as error:
        raise fail(_message(error), json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps(result.to_dict(), default=str, allow_nan=False))
    else:
        from churnops.commands.train import _print_summary

        if result.training is not None:
            _print_summary(result.training)
        typer.echo(f"retrain ({result.trigger.value}, decision {result.decision_id}): {result.message}")
    if not result.registered:
        raise typer.Exit(code=GATES_FAILED_EXIT)
