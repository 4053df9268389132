"""`churnops simulate`: backtest retraining policies on generated history, side by side.

Replays ``--months`` months month by month (batch scoring, labels maturing a month later,
monitoring, the policy's decision, retrain, gates, promotion) once per policy, through the real
components in a throw-away embedded home per policy, and compares ``never`` (no retrain),
``monthly`` (a schedule) and ``policy`` (``--policy``, default the packaged one). Writes a JSON
document (``policies: [{name, retrains, promotions, months: [{month, roc_auc, version,
retrained, trigger, ...}]}]``), a PNG plot and an HTML timeline. Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from churnops.commands.common import fail, load_settings, quiet_libraries
from churnops.commands.common import safe_text as escape

DateOpt = Annotated[str | None, typer.Option(help="YYYY-MM-DD (the 1st of a replayed month).")]


def _date(value: str | None, option: str, json_output: bool) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} {value!r}: a date YYYY-MM-DD", json_output=json_output) from None


def simulate(
    months: Annotated[int, typer.Option("--months", help="Months to replay after the warm-up.")] = 12,
    data_drift_from: Annotated[
        str | None, typer.Option("--data-drift-from", help="Inject a price rise from this date (YYYY-MM-DD).")
    ] = None,
    concept_drift_from: Annotated[
        str | None,
        typer.Option("--concept-drift-from", help="Change what drives churn from this date (YYYY-MM-DD)."),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="The retraining policy under test (default: packaged).")
    ] = None,
    gate_policy: Annotated[
        Path | None,
        typer.Option("--gate-policy", help="Gate policy YAML for every retrain (default: packaged)."),
    ] = None,
    customers: Annotated[int, typer.Option("--customers", help="Synthetic customers.")] = 4000,
    start: Annotated[str, typer.Option("--start", help="First generated month (YYYY-MM-DD).")] = "2024-01-01",
    seed: Annotated[int, typer.Option("--seed")] = 42,
    warmup_months: Annotated[
        int, typer.Option("--warmup-months", help="Months the first model trains on before the replay.")
    ] = 6,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for the outputs (default <home>/simulations/<time>)."),
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML timeline here.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Write the PNG plot here.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the JSON document instead of tables.")
    ] = False,
) -> None:
    """Backtest: never retrain vs monthly vs your policy, on the same generated history."""
    from churnops.retraining import RetrainPolicyError, load_policy
    from churnops.simulation.backtest import SimulationError, SimulationSpec
    from churnops.simulation.backtest import simulate as run
    from churnops.simulation.policies import MONTHLY, NEVER, POLICY, monthly, never
    from churnops.simulation.report import write_html, write_png

    settings = load_settings(json_output=json_output)
    try:
        rules = load_policy(policy or settings.retrain_policy)
    except RetrainPolicyError as error:
        raise fail(str(error), json_output=json_output) from None
    first = _date(start, "--start", json_output)
    assert first is not None
    spec = SimulationSpec(
        months=months,
        customers=customers,
        seed=seed,
        start=first,
        warmup_months=warmup_months,
        data_drift_from=_date(data_drift_from, "--data-drift-from", json_output),
        concept_drift_from=_date(concept_drift_from, "--concept-drift-from", json_output),
    )
    if problems := spec.problems():
        raise fail("; ".join(problems), json_output=json_output)
    target = out or settings.layout.simulations / settings.clock.strftime("%Y%m%dT%H%M%SZ")
    quiet_libraries()
    console = Console(stderr=True)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="churnops-simulate-") as workdir,
            console.status("simulating...") as status,
        ):
            simulation = run(
                spec=spec,
                policies=[(NEVER, never(rules)), (MONTHLY, monthly(rules)), (POLICY, rules)],
                workdir=Path(workdir),
                gate_policy=gate_policy or settings.gate_policy,
                drift_policy=settings.drift_policy,
                progress=lambda message: status.update(escape(message)),
            )
    except SimulationError as error:
        raise fail(str(error), json_output=json_output) from None
    png_path = write_png(simulation=simulation, path=png or target / "simulation.png")
    html_path = write_html(simulation=simulation, path=html or target / "simulation.html", png=png_path)
    json_path = target / "simulation.json"
    doc = simulation.to_json()
    for run_doc in doc["policies"]:
        run_doc.pop("home")  # a temporary directory, gone now
    doc["artifacts"] = {"json": str(json_path), "png": str(png_path), "html": str(html_path)}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=2, allow_nan=False), encoding="utf-8")
    if json_output:
        typer.echo(json.dumps(doc, allow_nan=False))
        return
    _print(simulation=simulation, paths=doc["artifacts"])


def _print(*, simulation: object, paths: dict[str, str]) -> None:
    from churnops.simulation.backtest import Simulation

    assert isinstance(simulation, Simulation)
    console = Console()
    for line in simulation.drift:
        console.print(f"injected: {escape(line)}", soft_wrap=True)
    table = Table(title="ROC-AUC on matured labels per month (* retrained, + promoted)")
    table.add_column("month")
    for run in simulation.policies:
        table.add_column(run.name, justify="right")
    for index, month in enumerate(simulation.policies[0].months):
        cells = []
        for run in simulation.policies:
            m = run.months[index]
            mark = "+" if m.promoted else "*" if m.retrained else " "
            cells.append(f"{'n/a' if m.roc_auc is None else f'{m.roc_auc:.3f}'} v{m.version}{mark}")
        table.add_row(month.month, *cells)
    table.add_section()
    table.add_row("mean", *[f"{r.mean_roc_auc() or 0:.3f}" for r in simulation.policies])
    if simulation.drift_month is not None:
        since = simulation.drift_month
        table.add_row(
            f"since {since}", *[f"{r.mean_roc_auc(since=since) or 0:.3f}" for r in simulation.policies]
        )
    table.add_row("retrains", *[str(r.retrains) for r in simulation.policies])
    table.add_row("promoted", *[str(r.promotions) for r in simulation.policies])
    console.print(table)
    for kind, path in paths.items():
        console.print(f"{kind}: {escape(path)}", soft_wrap=True)
