"""The loop on Dagster: a nightly schedule, a sensor on recorded decisions, and the jobs.

- ``churn_loop`` (compact_log -> monitor -> decide -> train_and_gate -> promote): the prediction
  log's closed day partitions compacted (the days before the loop's "now": serving writes today's;
  compaction is safe while it writes anyway), a drift report of the latest window, the retraining
  check (the policy's schedule, performance and drift triggers, cooldown and cap), then, only
  when the decision fired, a challenger trained on the policy's window and gated against the
  champion on the same newest rows, then its promotion. ``train_and_gate`` is one step because
  the gates judge the in-memory challenger inside its training run, under the retrain lock; its
  output exists only when a version passed, so ``promote`` is skipped otherwise.
- ``nightly_loop``: ``churn_loop`` every night at 02:00 UTC.
- ``retrain_decision_sensor``: a fired decision recorded elsewhere (``churnops retrain check``
  from cron, another deployment) that produced no version yet requests ``churn_retrain``
  (train_and_gate -> promote) with run key ``decision-<id>``: one verdict launches one retrain.

Every step calls the same :mod:`churnops.jobs` functions as the CLI. Settings come from the
environment (``CHURNOPS_*``) as for the CLI; the resource's fields override a few of them.
"""

# No `from __future__ import annotations`: Dagster reads the op signatures at run time.

from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from churnops.settings import Settings


class ChurnOpsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where the loop runs: ``home`` and the policy files override the environment's settings;
    ``now`` (ISO 8601) pins the clock for a backfill or a test."""

    home: str | None = None
    retrain_policy: str | None = None
    gate_policy: str | None = None
    now: str | None = None

    def settings(self) -> Settings:
        overrides: dict[str, Any] = {}
        if self.home:
            overrides["home"] = Path(self.home)
        if self.retrain_policy:
            overrides["retrain_policy"] = Path(self.retrain_policy)
        if self.gate_policy:
            overrides["gate_policy"] = Path(self.gate_policy)
        return Settings(**overrides)

    def clock(self) -> datetime:
        from churnops.contracts.clock import not_in_future
        from churnops.contracts.timestamps import parse_utc

        if self.now:
            return not_in_future(parse_utc(self.now, field="now"), field="now")
        return self.settings().clock

    def policy(self) -> Any:
        from churnops.retraining import load_policy

        return load_policy(self.settings().retrain_policy)


@dg.op(description="Compact the prediction log's closed day partitions (one file per day).")
def compact_log(context: dg.OpExecutionContext, churnops: ChurnOpsResource) -> dict:  # type: ignore[type-arg]
    from churnops.jobs import compact_log as compact

    today = churnops.clock().date()
    try:
        done = compact(settings=churnops.settings(), before=today)
    except ValueError as error:  # the SQL log: one table, no files; monitoring still runs
        context.log.info(f"no compaction: {error}")
        return {"compacted": [], "files_in": 0, "rows": 0}
    doc = done.to_dict()
    context.log.info(
        f"compacted {len(done.compacted)} of {done.partitions} partition(s) before {today}: "
        f"{doc['files_in']} part files, {doc['rows']} rows"
    )
    context.add_output_metadata({"partitions": len(done.compacted), "files_in": doc["files_in"]})
    return doc


@dg.op(
    description="Drift report of the newest prediction-log window of the Production version.",
    ins={"after": dg.In(dg.Nothing)},
)
def monitor(context: dg.OpExecutionContext, churnops: ChurnOpsResource) -> str:
    from churnops.jobs import drift_report
    from churnops.wiring import model_source

    settings = churnops.settings()
    ref = model_source(settings).production()
    if ref is None:
        context.log.info("no Production version: nothing to monitor")
        return "none"
    try:
        result, _ = drift_report(settings=settings, version=ref.version, as_of=churnops.clock())
    except ValueError as error:  # an empty prediction log: the check still runs (schedule, cap)
        context.log.info(f"no drift report: {error}")
        return "none"
    context.add_output_metadata({"status": result.status, "report": str(result.report_html)})
    return result.status


@dg.op(
    description="The retraining check, recorded in retrain_decisions; continues only when it fired.",
    out={"fired": dg.Out(dict, is_required=False)},
)
def decide(context: dg.OpExecutionContext, churnops: ChurnOpsResource, drift_status: str) -> Any:
    from churnops.jobs import check_retrain

    record = check_retrain(settings=churnops.settings(), policy=churnops.policy(), now=churnops.clock())
    context.log.info(
        f"decision {record.id}: fired={record.fired} trigger={record.trigger} "
        f"suppressed_by={record.suppressed_by} (drift report status {drift_status})"
    )
    if record.fired:
        yield dg.Output({"decision_id": record.id}, "fired")


@dg.op(
    description="Challenger on the policy's window, gated against the champion on the same rows; "
    "registered and staged only when it passes.",
    out={"staged": dg.Out(dict, is_required=False)},
)
def train_and_gate(context: dg.OpExecutionContext, churnops: ChurnOpsResource, decision: dict) -> Any:  # type: ignore[type-arg]
    from churnops.jobs import retrain

    result = retrain(
        settings=churnops.settings(),
        policy=churnops.policy(),
        gate_policy=None,
        forced=None,
        decision_id=int(decision["decision_id"]),
        now=churnops.clock(),
        promote=False,
    )
    context.log.info(f"decision {decision['decision_id']}: {result.message}")
    if result.version is not None:
        yield dg.Output(
            {"version": result.version, "trigger": result.trigger.value, "decision_id": result.decision_id},
            "staged",
        )


@dg.op(description="Staging -> Production when the retraining policy says so.")
def promote(context: dg.OpExecutionContext, churnops: ChurnOpsResource, staged: dict) -> bool:  # type: ignore[type-arg]
    from churnops.jobs import promote_retrained

    moved = promote_retrained(
        settings=churnops.settings(),
        policy=churnops.policy(),
        decision_id=int(staged["decision_id"]),
        now=churnops.clock(),
    )
    context.log.info(f"version {staged['version']}: {'Production' if moved else 'stays in Staging'}")
    return moved


@dg.op(description="The decision the sensor saw.", config_schema={"decision_id": int})
def requested_decision(context: dg.OpExecutionContext) -> dict:  # type: ignore[type-arg]
    return {"decision_id": int(context.op_config["decision_id"])}


@dg.job(description="compact_log -> monitor -> decide -> train_and_gate -> promote")
def churn_loop() -> None:
    promote(train_and_gate(decide(monitor(after=compact_log()))))


@dg.job(description="train_and_gate -> promote for a decision that fired")
def churn_retrain() -> None:
    promote(train_and_gate(requested_decision()))


nightly_loop = dg.ScheduleDefinition(
    name="nightly_loop", job=churn_loop, cron_schedule="0 2 * * *", execution_timezone="UTC"
)


def pending_decision(settings: Settings) -> int | None:
    """The newest fired decision no retrain finished yet (by id; a later check never hides it)."""
    from churnops.jobs import pending_retrain

    record = pending_retrain(settings=settings)
    return None if record is None else record.id


@dg.sensor(job=churn_retrain, minimum_interval_seconds=300, name="retrain_decision_sensor")
def retrain_decision_sensor(context: dg.SensorEvaluationContext, churnops: ChurnOpsResource) -> Any:
    decision_id = pending_decision(churnops.settings())
    if decision_id is None:
        return dg.SkipReason("no fired decision waiting for a retrain")
    return dg.RunRequest(
        run_key=f"decision-{decision_id}",
        run_config={"ops": {"requested_decision": {"config": {"decision_id": decision_id}}}},
    )


defs = dg.Definitions(
    jobs=[churn_loop, churn_retrain],
    schedules=[nightly_loop],
    sensors=[retrain_decision_sensor],
    resources={"churnops": ChurnOpsResource()},
)
