"""`churnops demo`: the whole loop on the embedded default, from an empty home dir.

generate (a price war in the last months: prices rise and contracts protect less) -> feast
apply -> materialize -> training set -> train on the months before it + gates -> register ->
Staging -> Production -> batch-score a month before and the newest month -> drift report for
each -> one pass of the retraining loop: the check records its decision, a challenger trains on
the newest matured labels and is gated against the champion on the same rows, and promoted if
it passes (serving follows the ``production`` alias without a restart) -> how to serve it.
Idempotent: a second run regenerates the same data and trains again (the gates decide whether
that makes a new version).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from churnops.commands.common import load_settings, pinned_now, quiet_libraries
from churnops.commands.common import safe_text as escape
from churnops.commands.invocation import command_prefix
from churnops.contracts.mlflow_keys import TEST_ROC_AUC
from churnops.contracts.monitoring_terms import ReportStatus

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from churnops.settings import Settings
    from registry_ext import ModelRecord

console = Console()


DRIFT_MONTHS = 4  # the price war (data + concept drift) covers the newest this many snapshots
SETTLE = timedelta(days=1)
"""The newest snapshot is the 1st of the month this long before now: its drift window (one
minute) has ended and its batch is a day old, whatever the time of day now."""


def _months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class DemoTimeline:
    """Where the demo's story sits on the calendar, in whole snapshots (months), never in days:
    every month tells the same story (a month's length never moves a label in or out).

    The snapshots are the 1st of ``months`` consecutive months, the newest one the month of
    ``now - SETTLE`` (so the served features are fresh: at most 32 days old, inside the views'
    TTL). With drift, the price war covers the newest ``DRIFT_MONTHS``; the first model learns
    the labels before it; the monitoring scores the month before it and the newest month; the
    challenger learns the labels of the ``DRIFT_MONTHS`` snapshots before the newest (one
    before the price war, the rest in it). A snapshot's label (churned within its month) is
    known when the next snapshot is taken, so the newest label the challenger reads is known.
    """

    now: datetime
    snapshots: tuple[datetime, ...]
    drift_from: date | None

    @property
    def start(self) -> date:
        return self.snapshots[0].date()

    @property
    def last(self) -> datetime:
        return self.snapshots[-1]

    @property
    def train_until(self) -> datetime | None:
        """The first model's newest label: the day before the price war."""
        if self.drift_from is None:
            return None
        return datetime.combine(self.drift_from, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)

    @property
    def monitored(self) -> tuple[datetime, datetime]:
        """The batches scored and checked for drift: the month before the price war, the newest."""
        assert self.drift_from is not None
        return self.snapshots[-DRIFT_MONTHS - 1], self.last

    @property
    def challenger_labels(self) -> tuple[datetime, datetime]:
        """The challenger's training window (both ends are snapshot times, inclusive)."""
        return self.snapshots[-DRIFT_MONTHS - 1], self.snapshots[-2]


def demo_timeline(*, now: datetime, months: int) -> DemoTimeline:
    """The demo's calendar at ``now`` for ``months`` monthly snapshots."""
    from churnops.data.generate import snapshot_times

    newest = (now - SETTLE).date()
    start = _months_before(newest.replace(day=1), months - 1)
    snapshots = tuple(snapshot_times(start=start, months=months))
    drift_from = snapshots[-DRIFT_MONTHS].date() if months > DRIFT_MONTHS + 2 else None
    return DemoTimeline(now=now, snapshots=snapshots, drift_from=drift_from)


def demo(
    customers: Annotated[int, typer.Option("--customers", help="Synthetic customers to generate.")] = 5000,
    months: Annotated[int, typer.Option("--months", help="Monthly snapshots.")] = 12,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    now: Annotated[
        str | None,
        typer.Option(
            "--now", help="Tell the story as of this time (ISO 8601; default: CHURNOPS_NOW, else now)."
        ),
    ] = None,
) -> None:
    """Run ChurnOps end to end on generated data (no services needed)."""
    from churnops.contracts.columns import EVENT_TS, LABEL
    from churnops.data.generate import generate_churn_data, write_generated
    from churnops.features.materialize import materialize
    from churnops.features.store import apply
    from churnops.features.training_set import build_training_set, label_entity_frame
    from churnops.wiring import feast_definitions, feature_store

    quiet_libraries()
    started = time.perf_counter()
    settings = load_settings()
    if now is not None:
        settings = settings.model_copy(update={"now": pinned_now(now)})
    moment = settings.clock
    console.rule("[bold]ChurnOps demo")
    console.print(f"home: {escape(str(settings.home))}")

    timeline = demo_timeline(now=moment, months=months)
    drift_from = timeline.drift_from
    with console.status("generating synthetic customers..."):
        data = generate_churn_data(
            customers=customers,
            months=months,
            seed=seed,
            start=timeline.start,
            data_drift_from=drift_from,
            concept_drift_from=drift_from,
        )
        write_generated(data=data, sources_dir=settings.sources_dir)
    console.print(
        f"[green]generated[/] {data.customers:,} customers, {data.snapshot_rows:,} monthly snapshot rows, "
        f"{data.churn_events:,} churn events ({data.churn_rate:.1%} per month), "
        f"{data.first_snapshot:%Y-%m-%d} .. {data.last_snapshot:%Y-%m-%d}"
        + (f"; price war (data + concept drift) from {drift_from:%Y-%m-%d}" if drift_from else "")
    )

    with console.status("applying the Feast repo..."):
        store = feature_store(settings)
        defs = feast_definitions(settings)
        apply(store=store, defs=defs)
    console.print(
        f"[green]applied[/] entity customer, views {', '.join(defs.views)}, "
        f"FeatureService {defs.churn_v1.name}"
    )

    with console.status("materializing the online store..."):
        result = materialize(store=store, end=data.last_snapshot)
    console.print(f"[green]materialized[/] online store (SQLite) as of {result.end:%Y-%m-%d %H:%M} UTC")

    with console.status("building the point-in-time training set..."):
        entity = label_entity_frame(sources_dir=settings.sources_dir)
        frame = build_training_set(store=store, entity_df=entity, feature_service=settings.feature_service)
    features = [f.name for proj in defs.churn_v1.feature_view_projections for f in proj.features]
    console.print(
        f"[green]training set[/] {len(frame):,} rows (= {len(entity):,} labels), "
        f"{int(frame[LABEL].sum()):,} churned, "
        f"{frame[EVENT_TS].min():%Y-%m-%d} .. {frame[EVENT_TS].max():%Y-%m-%d}, {len(features)} features"
    )

    version = _train_and_promote(settings=settings, store=store, labels_end=timeline.train_until)
    if version is not None and drift_from is not None:
        _monitor(settings=settings, store=store, timeline=timeline)
        _retrain_loop(settings=settings, timeline=timeline)

    from churnops.contracts.redaction import redact

    summary = Table(title="where things are", show_header=False)
    summary.add_row("sources (parquet)", str(settings.sources_dir))
    summary.add_row("Feast registry", redact(settings.registry_url))
    summary.add_row("online store", str(settings.layout.online_store))
    summary.add_row("MLflow", redact(settings.tracking_uri))
    summary.add_row("features", ", ".join(features))
    console.print(summary)
    console.print(
        f"MLflow UI: {command_prefix()}mlflow ui --backend-store-uri "
        f"{redact(settings.tracking_uri)} --port 5000",
        soft_wrap=True,
        markup=False,
    )
    if version is not None:
        _how_to_serve(settings=settings, frame=frame)
    console.print(f"done in {time.perf_counter() - started:.1f} s")


def _monitor(*, settings: Settings, store: FeatureStore, timeline: DemoTimeline) -> None:
    """Batch-score a month before the price rise and the newest month, then a drift report of each."""
    from churnops.features.definitions import TTL
    from churnops.jobs import drift_report
    from churnops.scoring.batch import ScoredModel, score_active_customers
    from churnops.wiring import model_source, prediction_log_writer

    source = model_source(settings)
    ref = source.production()
    if ref is None:
        return
    model = ScoredModel(
        name=ref.name,
        version=ref.version,
        feature_service=ref.feature_service or settings.feature_service,
        estimator=source.load(ref).estimator,
    )
    before, last = timeline.monitored
    table = Table(title=f"drift of {ref.name} v{ref.version} (Evidently: KL, Jensen-Shannon, KS)")
    for column in ("month", "rows", "drifted features (KL)", "score JS", "concept KS", "verdict"):
        table.add_column(column, overflow="fold")
    reports = []
    for when in (before, last):
        with console.status(f"batch scoring as of {when:%Y-%m-%d} and checking drift..."):
            scores = score_active_customers(
                store=store,
                model=model,
                sources_dir=settings.sources_dir,
                as_of=when,
                ttl=TTL["account"],
                sink=prediction_log_writer(settings),
            )
            result, _ = drift_report(
                settings=settings,
                version=ref.version,
                start=when,
                end=when + timedelta(minutes=1),  # the batch is stamped `when`: a window that has ended
                as_of=last + timedelta(days=1),
            )
        doc = result.to_json()
        drifted = [f["feature"] for f in doc["data_drift"]["features"] if f["drifted"]]
        prediction, concept = doc["prediction_drift"], doc["concept_drift"]
        table.add_row(
            f"{when:%Y-%m}",
            f"{scores.scored:,}",
            ", ".join(drifted) or "none",
            "-" if prediction["score"] is None else f"{prediction['score']:.3f}",
            "no labels yet"
            if concept["status"] == ReportStatus.INSUFFICIENT_DATA
            else str(concept["status"]),
            "[red]drift[/]" if result.status == "drift" else f"[green]{result.status}[/]",
        )
        reports.append(result.report_html)
    console.print(table)
    for path in reports:
        console.print(f"drift report: {path}", soft_wrap=True)
    console.print(
        f"history of these reports: uv run evidently ui --workspace {settings.layout.evidently}",
        soft_wrap=True,
    )


# The demo's retraining policy: one drifted window is enough (the packaged default wants two in
# a row, and a 30 % drifted share), so one pass of the loop shows a retrain.
DEMO_POLICY = {
    "name": "demo",
    "schedule": None,
    "performance": {"enabled": False},
    "drift": {"max_drifted_share": 0.05, "max_prediction_js": 0.10, "consecutive_windows": 1},
    "cooldown_hours": 0,
    "window_days": 120,  # the recent regime (the demo passes it as whole snapshots: DemoTimeline)
    "promote_to": "Production",
}


def _retrain_loop(*, settings: Settings, timeline: DemoTimeline) -> None:
    """retrain check -> (fired) retrain on the newest matured labels -> gates -> promotion."""
    from churnops.commands.retrain import _print_decision
    from churnops.jobs import check_retrain, retrain
    from churnops.retraining import parse_policy
    from churnops.retraining.run import TrainingWindow
    from churnops.wiring import model_source

    now = timeline.now
    first, newest = timeline.challenger_labels

    console.rule("[bold]retraining loop")
    policy = parse_policy(DEMO_POLICY, source="demo policy")
    record = check_retrain(settings=settings, policy=policy, now=now)
    _print_decision(record)
    if not record.fired:
        why = f"suppressed by {record.suppressed_by}" if record.suppressed_by else "no trigger due"
        console.print(f"no retrain: {why}")
        return
    source = model_source(settings)
    before = source.production()
    with console.status("retraining on the newest matured labels, gated against Production..."):
        result = retrain(
            settings=settings,
            policy=policy,
            gate_policy=None,
            forced=None,
            decision_id=record.id,
            now=now,
            window=TrainingWindow(start=first, end=newest),  # whole snapshots, not days before now
        )
    test = result.train.test.overall
    console.print(
        f"[green]challenger[/] {result.train.family} on labels {result.window.start:%Y-%m-%d} .. "
        f"{result.window.end:%Y-%m-%d}: test ROC-AUC {test['roc_auc']:.3f}"
        + (
            f" vs Production v{before.version} {result.train.production_test.overall['roc_auc']:.3f} "
            "on the same rows"
            if before is not None and result.train.production_test is not None
            else ""
        )
    )
    for gate in result.train.gates.failures:
        console.print(f"  [red]x[/] {escape(gate.rule)}: {escape(gate.detail)}")
    console.print(
        f"retrain ({result.trigger.value}, decision {result.decision_id}): {escape(result.message)}"
    )
    after = source.production()
    if after is not None and (before is None or after.version != before.version):
        console.print(
            f"serving follows the production alias: now v{after.version} (a running `churnops serve` "
            f"switches within {settings.serving_poll_seconds:.0f} s without a restart; POST /model/refresh "
            "switches at once)"
        )


def _train_and_promote(
    *, settings: Settings, store: FeatureStore, labels_end: datetime | None = None
) -> int | None:
    """Train on churn_v1 (labels up to ``labels_end``), let the gates decide, promote a new version."""
    from churnops.training import TrainOptions, load_policy, train
    from churnops.wiring import open_registry

    with open_registry(settings, write=True) as registry:
        with console.status("training candidates on churn_v1 (MLflow run, quality gates)...") as status:
            result = train(
                store=store,
                client=registry.client,
                registry=registry,
                sources_dir=settings.sources_dir,
                policy=load_policy(settings.gate_policy),
                options=TrainOptions(
                    feature_service=settings.feature_service,
                    trigger="manual",
                    labels_end=labels_end,
                    progress=lambda step: status.update(f"training: {step}..."),
                ),
                artifact_location=settings.artifact_location,
            )
        test = result.test.overall
        console.print(
            f"[green]trained[/] {result.family} (run {result.run_id[:8]}): "
            f"test ROC-AUC {test['roc_auc']:.3f}, "
            f"PR-AUC {test['pr_auc']:.3f}, Brier {test['brier']:.3f}; gates "
            + (
                "[green]passed[/]"
                if result.gates.passed
                else "[yellow]not better than Production[/]"
                if result.gates.not_better
                else "[red]failed[/]"
            )
        )
        if not result.gates.not_better:
            for gate in result.gates.failures:
                console.print(f"  [red]x[/] {escape(gate.rule)}: {escape(gate.detail)}")
        if result.version is None:
            current = registry.production()
            console.print(
                f"{escape(result.registration)}; Production stays at "
                f"{'v' + str(current.version) if current else 'nothing'}"
            )
            _registry_table(registry.all_versions())
            return current.version if current else None
        reason = "demo: passed the quality gates"
        registry.promote(version=result.version, stage="Staging", reason=reason, actor="churnops-demo")
        registry.promote(version=result.version, stage="Production", reason=reason, actor="churnops-demo")
        console.print(
            f"[green]registered[/] {settings.model_name} v{result.version} -> Staging -> Production"
        )
        _registry_table(registry.all_versions())
        return result.version


def _registry_table(records: list[ModelRecord]) -> None:
    table = Table(title="model registry (registry_ext)")
    for column in ("version", "stage", "test ROC-AUC", "sha256", "run", "created"):
        table.add_column(column)
    for r in records:
        auc = r.metrics.get(TEST_ROC_AUC)  # absent on a version adopted from a run without it
        table.add_row(
            str(r.version),
            r.stage.value,
            "" if auc is None else f"{auc:.3f}",
            r.sha256[:12],
            r.run_id[:8],
            f"{r.created:%Y-%m-%d %H:%M}",
        )
    console.print(table)


def _how_to_serve(*, settings: Settings, frame: pd.DataFrame) -> None:
    from churnops.contracts.columns import EVENT_TS, JOIN_KEY
    from serving.hints import how_to_serve

    latest = str(frame[frame[EVENT_TS] == frame[EVENT_TS].max()][JOIN_KEY].iloc[0])
    console.rule("[bold]serve the Production model")
    hint = how_to_serve(customer_id=latest, port=3000, api_key=settings.serving_api_key is not None)
    console.print(
        # as it runs in the user's shell (uv run / the venv's bin), and where it listens
        hint.replace("churnops serve --port 3000", f"{command_prefix()}churnops serve --port 3000", 1)
        + "\n(churnops serve listens on 127.0.0.1 only; add --host 0.0.0.0 to accept other hosts,"
        " which is what a bare `bentoml serve` does)",
        soft_wrap=True,
        markup=False,
    )
