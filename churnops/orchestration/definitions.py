"""The loop on Dagster: a nightly schedule, a sensor on recorded decisions, and the jobs.

- ``churn_loop``: one day of the loop per daily partition, one op per step of
  :data:`churnops.contracts.loop.LOOP_STEPS` (features -> score -> monitor -> decide -> retrain
  -> promote -> compact -> alert), each calling :func:`churnops.jobs.run_loop_step`, the function
  ``churnops loop run`` runs them with. Each finished step is recorded once per day in the
  registry database, so a retried op, a rerun of a finished partition or a day the CLI ran
  already replays the records instead of scoring or retraining again. The transient steps retry
  (:data:`TRANSIENT`). A backfill runs one run per day; the run queue admits one loop run at a
  time (tag ``churnops/loop``, see ``churnops.orchestration.home``), so days replay in order.
- ``nightly_loop``: today's partition at 02:00 UTC with run key ``loop-<day>`` (one run a day);
  RUNNING by default, like the sensor: ``dagster dev`` runs the loop without a toggle.
- ``retrain_decision_sensor``: a fired decision recorded elsewhere (``churnops retrain check``
  from cron, another deployment) that produced no version yet requests ``churn_retrain``
  (train_and_gate -> promote) with run key ``decision-<id>``: one verdict launches one retrain
  (a loop day whose retrain step finds the decision finished by it records that and moves on).

Every step calls the same :mod:`churnops.jobs` functions as the CLI. Settings come from the
environment (``CHURNOPS_*``) as for the CLI; the resource's fields override a few of them.
"""

# No `from __future__ import annotations`: Dagster reads the op signatures at run time.

from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from churnops.contracts.loop import LOOP_STEPS, LoopStep
from churnops.orchestration.home import LOOP_TAG
from churnops.settings import Settings


class ChurnOpsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where the loop runs: ``home`` and the policy files override the environment's settings;
    ``now`` (ISO 8601) pins the clock (CHURNOPS_NOW) for a test. A loop day runs as of its
    partition's first instant whatever the clock says, as long as that lies in the past."""

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
        if self.now:
            overrides["now"] = self.now  # the clock every step reads (Settings.clock)
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


LOOP_START = "2024-01-01"
"""The first day a backfill can replay (the generated data's default start)."""

loop_days = dg.DailyPartitionsDefinition(start_date=LOOP_START, timezone="UTC", end_offset=1)
"""One partition per day; ``end_offset=1``: today's partition exists from its first instant, the
moment its loop runs as of (:func:`churnops.contracts.loop.loop_moment`)."""

# LOOP_TAG (on every loop run): the run queue admits one at a time (``DAGSTER_HOME``'s
# dagster.yaml, churnops.orchestration.home), so a backfill replays its days in order.

TRANSIENT = dg.RetryPolicy(max_retries=3, delay=60, backoff=dg.Backoff.EXPONENTIAL)
"""Steps that wait on something else (a busy retrain lease, the online store, MLflow, the log)."""
RETRIED = {LoopStep.FEATURES, LoopStep.SCORE, LoopStep.MONITOR, LoopStep.RETRAIN, LoopStep.PROMOTE}


def _loop_op(step: LoopStep) -> dg.OpDefinition:
    """The op that runs ``step`` of its partition's day through :func:`churnops.jobs.run_loop_step`
    (recorded once per day: a retried or rerun op replays the record)."""

    @dg.op(
        name=f"loop_{step.value}",
        description=f"The loop's {step.value} step of the partition's day (churnops.jobs.run_loop_step).",
        ins={"after": dg.In(dg.Nothing)},
        retry_policy=TRANSIENT if step in RETRIED else None,
        tags={"kind": "churnops"},
    )
    def run(context: dg.OpExecutionContext, churnops: ChurnOpsResource) -> dict:  # type: ignore[type-arg]
        from churnops.jobs import LoopStepError, run_loop_step

        day = date.fromisoformat(context.partition_key)
        try:
            result = run_loop_step(
                settings=churnops.settings(),
                day=day,
                step=step,
                policy=churnops.policy(),
                gate_policy=Path(churnops.gate_policy) if churnops.gate_policy else None,
            )
        except LoopStepError as error:  # due and not completed: the retry policy runs it again
            raise dg.Failure(description=str(error)) from None
        replayed = " (recorded by an earlier run: not run again)" if result.replayed else ""
        context.log.info(f"{day} {step.value}: {result.status.value}{replayed} {dict(result.detail)}")
        context.add_output_metadata({"status": result.status.value, "replayed": result.replayed})
        return result.to_dict()

    return run


LOOP_OPS = tuple(_loop_op(step) for step in LOOP_STEPS)


@dg.job(
    partitions_def=loop_days,
    tags={LOOP_TAG: "day"},
    description="One day of the loop (its partition): "
    + " -> ".join(step.value for step in LOOP_STEPS)
    + "; the same steps `churnops loop run --date DAY` runs, recorded once per day.",
)
def churn_loop() -> None:
    previous = None
    for op in LOOP_OPS:
        previous = op() if previous is None else op(after=previous)


@dg.schedule(
    name="nightly_loop",
    job=churn_loop,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_loop(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Today's partition at 02:00 UTC, with run key ``loop-<day>``: one run per day."""
    if context.scheduled_execution_time is None:
        raise dg.DagsterInvariantViolationError("nightly_loop needs its scheduled execution time")
    day = context.scheduled_execution_time.date().isoformat()
    return dg.RunRequest(run_key=f"loop-{day}", partition_key=day)


@dg.job(description="train_and_gate -> promote for a decision that fired")
def churn_retrain() -> None:
    promote(train_and_gate(requested_decision()))


def pending_decision(settings: Settings) -> int | None:
    """The newest fired decision no retrain finished yet (by id; a later check never hides it)."""
    from churnops.jobs import pending_retrain

    record = pending_retrain(settings=settings)
    return None if record is None else record.id


@dg.sensor(
    job=churn_retrain,
    minimum_interval_seconds=300,
    name="retrain_decision_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def retrain_decision_sensor(context: dg.SensorEvaluationContext, churnops: ChurnOpsResource) -> Any:
    from registry_ext.migrate import SchemaNotReadyError

    try:
        decision_id = pending_decision(churnops.settings())
    except SchemaNotReadyError as error:  # a new home: nothing trained, nothing to retrain yet
        return dg.SkipReason(str(error))
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
