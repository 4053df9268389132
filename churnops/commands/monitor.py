"""`churnops monitor drift|performance`: the prediction log against the model's own baselines.

``drift`` compares a window of the log for one model version with the version's training
reference (data drift: KL per feature; prediction drift: Jensen-Shannon on the score) and, once
labels have matured, its holdout (concept drift: KS on the randomized PIT), writes the HTML
report under ``<home>/reports/``, adds it to the Evidently workspace ``<home>/evidently`` and logs
a monitoring run to MLflow. ``performance`` joins the log to labels that arrived later. Both push
their gauges to a Pushgateway when one is configured. Exit codes: 0 (whatever the verdict; the
JSON ``status`` says it), 2 bad input or nothing to read.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from churnops.commands.common import (
    fail,
    load_settings,
    option_time,
    pinned_now,
    quiet_libraries,
    safe_text,
)
from churnops.contracts.monitoring_terms import ReportStatus
from churnops.jobs import drift_report as _drift
from churnops.jobs import performance_report as _performance

if TYPE_CHECKING:
    from churnops.settings import Settings
    from monitoring.drift import DriftResult
    from monitoring.performance import PerformanceReport

app = typer.Typer(help="Watch the Production model: drift reports and performance on late labels.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
StartOpt = Annotated[
    str | None, typer.Option("--start", help="Window start (with offset; default: end - --days).")
]
EndOpt = Annotated[
    str | None, typer.Option("--end", help="Window end, exclusive (default: just after the newest row).")
]
DaysOpt = Annotated[int, typer.Option("--days", min=1, help="Window length when --start is not given.")]
PushOpt = Annotated[
    str | None,
    typer.Option("--push-gateway", help="Pushgateway host:port or URL (default: CHURNOPS_PUSHGATEWAY_URL)."),
]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="Labels known at this time count (default: CHURNOPS_NOW, else now)."),
]
HorizonOpt = Annotated[
    int, typer.Option("--label-horizon-days", min=0, help="Days after a snapshot until its label is final.")
]


def _version(settings: Settings, version: str, json_output: bool) -> str:
    if version.strip().lower() != "production":
        if not version.strip().isdigit() or int(version) < 1:
            raise fail(f"--version {version!r}: a version number, or 'production'", json_output=json_output)
        return str(int(version))
    from churnops.wiring import model_source

    ref = model_source(settings).production()
    if ref is None:
        raise fail(
            f"model {settings.model_name!r} has no Production version: run `churnops train` and promote one, "
            "or pass --version N",
            json_output=json_output,
        )
    return ref.version


@app.command("drift")
def drift(
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 31,
    version: Annotated[
        str, typer.Option("--version", help="Model version to monitor, or 'production'.")
    ] = "production",
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the HTML report here (default <home>/reports/...).")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", help="Drift policy YAML (default: CHURNOPS_DRIFT_POLICY or the packaged one)."
        ),
    ] = None,
    as_of: AsOfOpt = None,
    horizon_days: HorizonOpt = 31,
    push_gateway: PushOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Data, prediction and concept drift of a prediction-log window against the version's baselines."""
    settings = load_settings(json_output=json_output)
    lower, upper = (
        option_time(start, option="--start", json_output=json_output),
        option_time(end, option="--end", json_output=json_output),
    )
    known = (
        settings.clock
        if as_of is None
        else pinned_now(as_of, option="--as-of", json_output=json_output, wall=settings.clock)
    )
    quiet_libraries()
    from mlflow.exceptions import MlflowException

    from monitoring.errors import MonitoringError
    from monitoring.prometheus import MonitoringPushError

    try:
        result, pushed = _drift(
            settings=settings,
            version=_version(settings, version, json_output),
            start=lower,
            end=upper,
            days=days,
            html=html,
            policy=policy,
            as_of=known,
            horizon=timedelta(days=horizon_days),
            push_gateway=push_gateway,
        )
    except (MonitoringError, MonitoringPushError, MlflowException, ValueError, OSError) as error:
        text = error.message if isinstance(error, MlflowException) else str(error).strip()
        raise fail(text.splitlines()[0] if text else type(error).__name__, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({**result.to_json(), "pushed_to": pushed}, allow_nan=False))
        return
    _print_drift(result, pushed)


def _print_drift(result: DriftResult, pushed: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    doc = result.to_json()
    colour = {ReportStatus.DRIFT: "red", ReportStatus.NO_DRIFT: "green"}.get(result.status, "yellow")
    console.print(
        f"[bold]{safe_text(result.model_name)} v{safe_text(result.model_version)}[/bold]: "
        f"[{colour}]{result.status}[/{colour}]; window {result.window_start:%Y-%m-%d %H:%M} .. "
        f"{result.window_end:%Y-%m-%d %H:%M} UTC, {result.current_rows:,} rows vs "
        f"{result.reference_rows:,} reference rows"
    )
    table = Table(title="Data drift (KL divergence per feature)")
    table.add_column("feature")
    table.add_column("KL", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("drifted")
    for f in sorted(result.features, key=lambda f: -(f.score or 0.0)):
        table.add_row(
            safe_text(f.feature),
            "-" if f.score is None else f"{f.score:.4f}",
            f"{f.threshold:.3f}",
            "[red]yes[/red]" if f.drifted else "",
        )
    console.print(table)
    prediction, concept = doc["prediction_drift"], doc["concept_drift"]
    summary = Table(title="Prediction and concept drift")
    for column in ("check", "statistic", "threshold", "verdict"):
        summary.add_column(column, justify="right" if column in ("statistic", "threshold") else "left")
    summary.add_row(
        "prediction (Jensen-Shannon)",
        "-" if prediction["score"] is None else f"{prediction['score']:.4f}",
        f"{prediction['threshold']:.3f}",
        "[red]drift[/red]" if prediction["drifted"] else "ok",
    )
    p_value = concept["p_value"]
    summary.add_row(
        f"concept (KS on PIT, {concept['labelled_rows']:,} labelled)",
        "-" if concept["statistic"] is None else f"D {concept['statistic']:.4f}, p {p_value:.2g}",
        f"p <= {concept['threshold']}",
        "[red]drift[/red]" if concept["drifted"] else safe_text(str(concept["status"])),
    )
    console.print(summary)
    console.print(safe_text(result.counts().text()))
    console.print(f"report: {safe_text(str(result.report_html))}")
    if pushed:
        console.print(f"pushed to the Pushgateway at {safe_text(pushed)}")


@app.command("performance")
def performance(
    start: StartOpt = None,
    end: EndOpt = None,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Window length when --start is not given.")
    ] = 365,
    as_of: AsOfOpt = None,
    period: Annotated[str, typer.Option("--period", help="week or month.")] = "month",
    horizon_days: HorizonOpt = 31,
    push_gateway: PushOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """ROC-AUC, PR-AUC, Brier, lift, precision/recall on matured labels, per version and period."""
    settings = load_settings(json_output=json_output)
    lower, upper = (
        option_time(start, option="--start", json_output=json_output),
        option_time(end, option="--end", json_output=json_output),
    )
    known = (
        settings.clock
        if as_of is None
        else pinned_now(as_of, option="--as-of", json_output=json_output, wall=settings.clock)
    )
    if period not in ("week", "month"):
        raise fail(f"--period {period!r}: week or month", json_output=json_output)
    quiet_libraries()
    from mlflow.exceptions import MlflowException

    from monitoring.errors import MonitoringError
    from monitoring.performance import PerformanceInputError
    from monitoring.prometheus import MonitoringPushError

    try:
        report, pushed = _performance(
            settings=settings,
            start=lower,
            end=upper,
            days=days,
            as_of=known,
            period=period,
            horizon=timedelta(days=horizon_days),
            push_gateway=push_gateway,
        )
    except (
        MonitoringError,
        PerformanceInputError,
        MonitoringPushError,
        MlflowException,
        ValueError,
        OSError,
    ) as error:
        text = error.message if isinstance(error, MlflowException) else str(error).strip()
        raise fail(text.splitlines()[0] if text else type(error).__name__, json_output=json_output) from None
    if json_output:
        typer.echo(json.dumps({**report.to_dict(), "pushed_to": pushed}, allow_nan=False, default=str))
        return
    _print_performance(report, pushed)


def _print_performance(report: PerformanceReport, pushed: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"{report.matured:,} matured predictions (of {report.scored:,} scored; {report.immature:,} not "
        f"matured yet, {report.unlabelled:,} without a label) as of {report.as_of}"
    )
    for counts in report.counts():
        console.print(safe_text(counts.text()))
    if report.in_sample:
        console.print(
            f"[yellow]{report.in_sample:,} predictions left out: their snapshot lies inside their "
            "version's training window (in-sample, not live performance)[/yellow]"
        )
    if report.unknown_windows:
        console.print(
            "[yellow]training window unknown for "
            + ", ".join(f"v{safe_text(v)}" for v in report.unknown_windows)
            + ": in-sample predictions of these versions could not be left out[/yellow]"
        )
    table = Table(title="Performance on matured labels (delta: vs the version's test metrics)")
    for column in ("version", "period", "rows", "ROC-AUC", "delta", "PR-AUC", "Brier", "lift"):
        table.add_column(column, justify="left" if column in ("version", "period") else "right")

    def cell(group: object, key: str, digits: int = 3) -> str:
        value = getattr(group, "metrics", {}).get(key)
        return "-" if value is None else f"{value:.{digits}f}"

    for group in (*report.versions, *report.periods):
        delta = group.delta.get("roc_auc")
        table.add_row(
            safe_text(group.model_version),
            safe_text(group.period),
            f"{group.rows:,}",
            cell(group, "roc_auc") if group.status == "ok" else "[yellow]too few[/yellow]",
            "-" if delta is None else f"{delta:+.3f}",
            cell(group, "pr_auc"),
            cell(group, "brier"),
            cell(group, "top_decile_lift", 2),
        )
    console.print(table)
    for group in report.versions:
        if group.label_lag_median_s is not None:
            console.print(
                f"v{safe_text(group.model_version)} label lag: "
                f"median {group.label_lag_median_s / 86400:.1f} d, "
                f"p90 {(group.label_lag_p90_s or 0) / 86400:.1f} d"
            )
    if pushed:
        console.print(f"pushed to the Pushgateway at {safe_text(pushed)}")
