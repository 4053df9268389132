"""`churnops loop run`: one day of the loop, the one entry point every scheduler calls.

refresh the online store -> batch-score the active customers -> drift and performance reports
-> the retraining check -> retrain and gate -> promote (or the gates' refusal) -> compact the
prediction log -> alert (:func:`churnops.jobs.run_loop_day`). The day runs as of its first
instant (UTC midnight); ``--date`` defaults to today (the clock's date: CHURNOPS_NOW when pinned).
Idempotent per day: each finished step is recorded in the registry database (``loop_steps``),
and a rerun replays those records instead of running the steps again (no second batch score,
no second retrain). Exit codes: 0 the day ran (whatever it decided: no retrain, a retrain the
gates refused, a promotion), 3 a step that was due could not complete (the JSON names it; a
rerun resumes there), 2 bad input (a --date that is not a day, or lies ahead).

The Kubernetes CronJob and the README's cron line call exactly this; the Dagster job runs the
same steps as one op each (``churnops.orchestration``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churnops.commands.common import fail, load_settings, quiet_libraries
from churnops.commands.common import safe_text as escape

if TYPE_CHECKING:
    from churnops.jobs import LoopDay

STEP_FAILED_EXIT = 3  # a step that was due could not complete (the codes: 0 ok, 2 bad input, 3 refused)

app = typer.Typer(help="The loop: one day of it, end to end.", no_args_is_help=True)


@app.command("run")
def run(
    day: Annotated[
        str | None,
        typer.Option(
            "--date", help="The day to run (YYYY-MM-DD; default: today, by CHURNOPS_NOW when pinned)."
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Retraining policy YAML (default: CHURNOPS_RETRAIN_POLICY)."),
    ] = None,
    gate_policy: Annotated[
        Path | None, typer.Option("--gate-policy", help="Gate policy YAML (default: CHURNOPS_GATE_POLICY).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run one day of the loop (exit 0 it ran, 3 a due step could not complete, 2 bad input)."""
    from churnops.jobs import loop_day_problem, run_loop_day
    from churnops.retraining import RetrainPolicyError, load_policy

    settings = load_settings(json_output=json_output)
    if day is None:
        when = settings.clock.date()
    else:
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise fail(f"--date {day!r}: not a day; give YYYY-MM-DD", json_output=json_output) from None
    problem = loop_day_problem(day=when, clock=settings.clock)
    if problem is not None:
        raise fail(f"--date: {problem}", json_output=json_output)
    try:
        rules = load_policy(policy or settings.retrain_policy)
    except RetrainPolicyError as error:
        raise fail(str(error), json_output=json_output) from None
    import feast  # noqa: F401  # its import resets the warning filters: load it before quieting them

    from monitoring.prometheus import MonitoringPushError

    quiet_libraries()
    try:
        result = run_loop_day(settings=settings, day=when, policy=rules, gate_policy=gate_policy)
    except MonitoringPushError as error:  # the day is recorded; a rerun replays it and pushes again
        fail(f"{error} (the day's steps are recorded: rerun the day to push)", json_output=json_output)
        raise typer.Exit(code=STEP_FAILED_EXIT) from None
    if json_output:
        typer.echo(json.dumps(result.to_dict(), default=str, allow_nan=False))
    else:
        _print(result)
    if not result.complete:
        raise typer.Exit(code=STEP_FAILED_EXIT)


def _print(result: LoopDay) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=escape(f"loop {result.model_name} {result.day} (as of {result.now:%Y-%m-%d %H:%M} UTC)")
    )
    table.add_column("step")
    table.add_column("status")
    table.add_column("detail", overflow="fold")  # paths and ids have no spaces to wrap at
    for step in result.steps:
        status = step.status.value + (" (recorded earlier)" if step.replayed else "")
        detail = "\n".join(escape(line) for line in _detail_text(step.detail).splitlines())
        table.add_row(step.step.value, status, detail)
    console.print(table)
    if result.failed_step is not None:
        console.print(f"[red]stopped at {result.failed_step.value}[/red]: {escape(result.error or '')}")
        console.print(
            "rerun the same day to resume there: `churnops loop run --date " + result.day.isoformat() + "`"
        )
    elif result.replayed:
        console.print("the day had run already: nothing was run again")


def _detail_text(detail: Mapping[str, Any], prefix: str = "") -> str:
    """One ``key=value`` line per fact, nested mappings as dotted keys, enums by their value:
    the table wraps lines instead of cutting them."""
    from enum import Enum

    lines = []
    for key, value in detail.items():
        if isinstance(value, Mapping):
            lines.append(_detail_text(value, prefix=f"{prefix}{key}."))
            continue
        shown = value.value if isinstance(value, Enum) else value
        lines.append(f"{prefix}{key}={shown}")
    return "\n".join(line for line in lines if line)


STOP_GRACE_S = 30.0  # after SIGTERM/SIGINT: how long `dagster dev` gets to stop its children


@app.command("ui")
def ui(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The Dagster UI's port.")] = 3001,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print where it runs as one JSON object first.")
    ] = False,
) -> None:
    """Dagster's UI and daemon (schedule and sensor RUNNING) with runs kept in DAGSTER_HOME
    (default <CHURNOPS_HOME>/dagster); stops on SIGTERM or Ctrl-C."""
    import os
    import shutil
    import signal
    import subprocess
    import sys

    from churnops.orchestration.home import DAGSTER_HOME_ENV, dagster_home, prepare_dagster_home

    settings = load_settings(json_output=json_output)
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or shutil.which("dagster")
    if dagster is None:
        raise fail("dagster is not installed: `uv sync --extra orchestration`", json_output=json_output)
    home = dagster_home(churnops_home=settings.home)
    config = prepare_dagster_home(home)
    info = {"dagster_home": str(home), "config": str(config), "url": f"http://127.0.0.1:{port}"}
    typer.echo(json.dumps(info) if json_output else f"Dagster home {home}; UI on {info['url']}")
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)

    # Handlers installed before the child starts: it begins with the default dispositions even when
    # this process was started in the background with SIGINT ignored (why `dagster dev &` could
    # not be stopped), and SIGTERM reaches it as the SIGINT it shuts down cleanly on.
    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = subprocess.Popen(  # noqa: S603 - our own dagster executable, fixed arguments
            [dagster, "dev", "-m", "churnops.orchestration.definitions", "-p", str(port)],
            env={**os.environ, DAGSTER_HOME_ENV: str(home)},
            start_new_session=True,
        )
        while child.poll() is None:
            if stopping:
                os.killpg(child.pid, signal.SIGINT)
                try:
                    child.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
                break
            try:
                child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    code = child.returncode
    if stopping:
        return
    if code:
        raise typer.Exit(code=code if code in (2, 3) else 2)
