"""The loop's one day (``churnops loop run`` and the Dagster job, one op per step) run on a real
home (Feast, MLflow SQLite, registry_ext, prediction log) with a pinned clock, over consecutive
days: a quiet day, a drift day whose retrain is promoted, a day whose retrain the gates refuse,
and reruns of finished days that change nothing. Dagster's own local execution
(``execute_in_process``, ``build_sensor_context``, ``build_schedule_context``); the sensor turns
one fired decision into exactly one run key, and none once it is acted on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg  # the churnops[orchestration] extra (./dev and CI install every extra)
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.loop import LOOP_STEPS, loop_moment
from churnops.contracts.policy_files import ShippedPolicy
from churnops.orchestration.definitions import (
    LOOP_TAG,
    ChurnOpsResource,
    churn_loop,
    churn_retrain,
    defs,
    retrain_decision_sensor,
)
from registry_ext.decisions import list_decisions
from tests.support.policies import write_over_shipped
from tests.support.retrain_env import RetrainEnv, make_retrain_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUIET = "name: quiet\nschedule: null\nperformance: {enabled: false}\ndrift: {enabled: false}\n"
# window_days 150: the window's labels (Jul .. Nov, ending label_maturity_days before now) are
# all from after the drift, so the challenger clearly beats the old model on the newest rows.
DRIFTY = (
    "name: drifty\nschedule: null\nperformance: {enabled: false}\n"
    "drift: {max_prediction_js: 0.0001, max_drifted_share: 1.0, consecutive_windows: 1}\n"
    "cooldown_hours: 0\nmax_retrains: 10\nwindow_days: 150\npromote_to: Production\n"
)
# a daily schedule: the day after a promotion fires on the schedule (the new model shows no drift)
# and trains on the same labels (monthly snapshots), so the challenger is no better: refused
DAILY = (
    "name: daily\nschedule: '0 12 * * *'\nperformance: {enabled: false}\ndrift: {enabled: false}\n"
    "cooldown_hours: 0\nmax_retrains: 10\nwindow_days: 150\npromote_to: Production\n"
)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RetrainEnv]:
    built = make_retrain_env(tmp_path / "home")
    yield built
    built.close()


def _resource(env: RetrainEnv, policy: Path, now: datetime) -> ChurnOpsResource:
    return ChurnOpsResource(home=str(env.settings.home), retrain_policy=str(policy), now=now.isoformat())


def _steps(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {node: result.output_for_node(f"loop_{node}") for node in (s.value for s in LOOP_STEPS)}


def _log_rows(env: RetrainEnv) -> int:
    from churnops.contracts.prediction_log import read_prediction_log

    return read_prediction_log(env.settings.home / "predictions").num_rows


def test_definitions_load_and_run_unattended() -> None:
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {"churn_loop", "churn_retrain"}
    schedule = repo.get_schedule_def("nightly_loop")
    sensor = repo.get_sensor_def("retrain_decision_sensor")
    assert schedule.cron_schedule == "0 2 * * *" and sensor.job_name == "churn_retrain"
    # nothing waits for someone to find a toggle
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # one run per day: the tick at 02:00 asks for today's partition under run key loop-<day>
    tick = datetime(2024, 12, 4, 2, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        request = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=tick, repository_def=repo)
        ).run_requests
    assert request is not None and len(request) == 1
    assert (request[0].run_key, request[0].partition_key) == ("loop-2024-12-04", "2024-12-04")
    job = repo.get_job("churn_loop")
    assert job.partitions_def is not None and job.tags[LOOP_TAG] == "day"
    assert [n.name for n in job.graph.nodes_in_topological_order] == [f"loop_{s.value}" for s in LOOP_STEPS]
    retried = {n.name for n in job.graph.nodes if n.definition.retry_policy is not None}  # type: ignore[union-attr]
    assert retried == {"loop_features", "loop_score", "loop_monitor", "loop_retrain", "loop_promote"}


def test_loop_days_quiet_promoted_refused_and_a_rerun(env: RetrainEnv, tmp_path: Path) -> None:
    """Consecutive pinned days through both entry points: day 1 by ``churnops loop run`` (quiet
    policy: nothing fires), day 2 in Dagster (drift fires, the challenger passes and is promoted),
    day 3 in Dagster (fires again, the gates refuse the same-window challenger), then day 1 and
    day 2 again: nothing runs twice (no second score, decision or retrain), and the CLI's exit
    codes (0 a night that ran, 2 a bad --date)."""
    quiet, drifty, daily = tmp_path / "quiet.yaml", tmp_path / "drifty.yaml", tmp_path / "daily.yaml"
    write_over_shipped(quiet, ShippedPolicy.RETRAIN, QUIET)
    write_over_shipped(drifty, ShippedPolicy.RETRAIN, DRIFTY)
    write_over_shipped(daily, ShippedPolicy.RETRAIN, DAILY)
    name = env.settings.model_name
    before = env.registry.production().version
    day1 = env.now.date()
    day2, day3 = day1 + timedelta(days=1), day1 + timedelta(days=2)
    clock = loop_moment(day3) + timedelta(hours=2)  # the pinned clock: every day has begun
    cli_env = {
        "CHURNOPS_HOME": str(env.settings.home),
        "CHURNOPS_NOW": clock.isoformat(),
        "CHURNOPS_RETRAIN_POLICY": str(quiet),
    }
    runner = CliRunner()

    # day 1, the cron line: quiet, every step ran, nothing fired, exit 0
    ran = runner.invoke(app, ["loop", "run", "--date", day1.isoformat(), "--json"], env=cli_env)
    assert ran.exit_code == 0, ran.output
    first = json.loads(ran.output)
    assert first["complete"] and not first["replayed"] and first["failed_step"] is None
    by_step = {s["step"]: s for s in first["steps"]}
    assert by_step["score"]["status"] == "done" and by_step["score"]["detail"]["logged"] > 0
    assert by_step["monitor"]["detail"]["drift"]["status"] is not None
    assert by_step["decide"]["detail"]["fired"] is False
    assert by_step["retrain"]["status"] == by_step["promote"]["status"] == "skipped"
    # no Alertmanager configured: the day's events are logged only (a quiet day has none)
    assert by_step["alert"]["detail"] == {"notifier": "DayEvents", "events": [], "sent": 0}
    rows = _log_rows(env)
    assert rows == by_step["score"]["detail"]["logged"]

    # day 2 in Dagster: drift fires, the challenger passes the gates and reaches Production
    result = churn_loop.execute_in_process(
        resources={"churnops": _resource(env, drifty, clock)}, partition_key=day2.isoformat()
    )
    assert result.success
    steps = _steps(result)
    assert steps["decide"]["detail"]["fired"] and steps["decide"]["detail"]["trigger"] == "drift"
    assert steps["retrain"]["detail"]["version"] is not None
    assert steps["promote"]["status"] == "done" and steps["promote"]["detail"]["production"] is True
    new = env.registry.production()
    assert new.version != before and str(new.version) == str(steps["retrain"]["detail"]["version"])
    fired = list_decisions(env.registry.engine, name=name)[-1]
    assert new.tags["churnops.trigger"] == "drift" and new.tags["churnops.decision_id"] == str(fired.id)
    assert new.tags["churnops.drift_report"] == fired.report and fired.report.startswith("runs:/")
    assert _log_rows(env) == 2 * rows  # day 2 scored once, with the old model, as of its midnight
    assert steps["alert"]["detail"]["events"] == ["drift_fired", "promoted"]

    # day 3: the schedule fires; the challenger on the same labels is no better: refused
    result = churn_loop.execute_in_process(
        resources={"churnops": _resource(env, daily, clock)}, partition_key=day3.isoformat()
    )
    assert result.success  # a refusal is a day that ran
    steps = _steps(result)
    assert steps["decide"]["detail"]["fired"] and steps["decide"]["detail"]["trigger"] == "scheduled"
    assert steps["retrain"]["detail"]["version"] is None and steps["retrain"]["detail"]["state"] == "refused"
    assert steps["promote"]["status"] == "skipped" and "refused" in steps["promote"]["detail"]["reason"]
    assert steps["alert"]["detail"]["events"] == ["retrain_refused"]  # a schedule is no drift
    assert env.registry.production().version == new.version
    decisions = list_decisions(env.registry.engine, name=name)
    assert [d.state.value for d in decisions] == ["not_fired", "promoted", "refused"]
    scored = _log_rows(env)

    # reruns: day 2 in Dagster, day 1 by the CLI (under the drifty policy now): all replayed
    again = churn_loop.execute_in_process(
        resources={"churnops": _resource(env, drifty, clock)}, partition_key=day2.isoformat()
    )
    assert again.success and all(s["replayed"] for s in _steps(again).values())
    rerun = runner.invoke(
        app,
        ["loop", "run", "--date", day1.isoformat(), "--json"],
        env=cli_env | {"CHURNOPS_RETRAIN_POLICY": str(drifty)},
    )
    assert rerun.exit_code == 0, rerun.output
    replay = json.loads(rerun.output)
    assert replay["replayed"] and replay["steps"] == [s | {"replayed": True} for s in first["steps"]]
    assert len(list_decisions(env.registry.engine, name=name)) == len(decisions)
    assert _log_rows(env) == scored and env.registry.production().version == new.version

    # bad input: exit 2, nothing run
    for bad in ("2024-13-01", day3.replace(year=day3.year + 5).isoformat()):
        refused = runner.invoke(app, ["loop", "run", "--date", bad, "--json"], env=cli_env)
        assert refused.exit_code == 2, refused.output
        assert "--date" in json.loads(refused.output)["error"]

    # the sensor: every fired decision was acted on by the loop -> nothing to request
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"churnops": _resource(env, drifty, clock)}
        )
        assert isinstance(retrain_decision_sensor(context), dg.SkipReason)


def test_the_sensor_keys_one_run_per_decision_recorded_elsewhere(env: RetrainEnv, tmp_path: Path) -> None:
    """A fired check recorded outside the loop (`churnops retrain check` elsewhere) becomes one
    ``churn_retrain`` run key, and none once that run acted on it."""
    from churnops.jobs import check_retrain, drift_report, score_production
    from churnops.retraining import load_policy

    drifty = tmp_path / "drifty.yaml"
    write_over_shipped(drifty, ShippedPolicy.RETRAIN, DRIFTY)
    resources = {"churnops": _resource(env, drifty, env.now)}
    score_production(settings=env.settings, as_of=env.data.last_snapshot)
    drift_report(settings=env.settings, version=str(env.old_version), as_of=env.now)
    record = check_retrain(settings=env.settings, policy=load_policy(drifty), now=env.now)
    assert record.fired, record.reasons
    with dg.instance_for_test() as instance:
        first = retrain_decision_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        again = retrain_decision_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(first, dg.RunRequest) and isinstance(again, dg.RunRequest)
        assert first.run_key == again.run_key == f"decision-{record.id}"
        run = churn_retrain.execute_in_process(
            run_config=first.run_config, resources=resources, instance=instance
        )
        assert run.success and run.output_for_node("promote") is True
        assert isinstance(
            retrain_decision_sensor(dg.build_sensor_context(instance=instance, resources=resources)),
            dg.SkipReason,
        )


def test_the_loop_compacts_closed_partitions_while_serving_writes(tmp_path: Path) -> None:
    """``loop_compact``, under Dagster's in-process executor, merges the part files of the days
    before its partition's day into one per day, leaves the day's own partition and batch files
    alone, and loses or doubles no row that a writer adds meanwhile."""
    import threading

    import pyarrow.compute as pc

    from churnops.contracts.prediction_log import COLUMNS, read_prediction_log, write_columns

    home = tmp_path / "home"
    log = home / "predictions"
    now = datetime(2025, 3, 3, 12, tzinfo=UTC)
    days = ("2025-03-01", "2025-03-02", "2025-03-03")  # the last one is "today": still written to

    def write(day: str, request: str, rows: int = 5, name: str | None = None) -> None:
        ts = datetime.fromisoformat(f"{day}T06:00:00+00:00")
        values: dict[str, object] = {
            "request_id": request,
            "ts": ts,
            "endpoint": "predict",
            "customer_id": "c",
            "model_name": "churn",
            "model_version": "1",
            "feature_service": "churn_v1",
            "score": 0.5,
            "status": "ok",
            "feature_ts": ts,
        }
        write_columns(directory=log, day=day, columns={c: [values.get(c)] * rows for c in COLUMNS}, name=name)

    for day in days:
        for i in range(6):
            write(day, f"{day}-{i}")
    write(days[0], "batch-run", name="batch-churn-v1-run")  # a batch file: replaced by name, not merged
    stop, added = threading.Event(), []

    def serving() -> None:  # serving keeps writing small files into yesterday's partition
        while not stop.is_set() and len(added) < 200:
            request = f"late-{len(added)}"
            write(days[1], request, rows=1)
            added.append(request)

    writer = threading.Thread(target=serving)
    writer.start()
    try:
        result = churn_loop.execute_in_process(
            resources={"churnops": ChurnOpsResource(home=str(home), now=now.isoformat())},
            op_selection=["loop_compact"],
            partition_key=days[2],
        )
    finally:
        stop.set()
        writer.join()
    assert result.success
    done = result.output_for_node("loop_compact")["detail"]
    assert done["compacted"] == 2 and done["partitions"] == 3
    first, today = (sorted(p.name for p in (log / f"date={d}").glob("*.parquet")) for d in (days[0], days[2]))
    assert (
        len(first) == 2 and first[0] == "batch-churn-v1-run.parquet" and first[1].startswith("part-compact-")
    )
    assert len(today) == 6  # today's partition: not compacted
    # every row once: the 18 x 5 + 5 written first, and every row the writer added meanwhile
    requests = pc.value_counts(read_prediction_log(log).column("request_id")).to_pylist()
    counts = {r["values"]: r["counts"] for r in requests}
    expected = {f"{d}-{i}": 5 for d in days for i in range(6)} | {"batch-run": 5} | dict.fromkeys(added, 1)
    assert counts == expected
    print(f"{len(added)} part files written into a compacted partition while the loop compacted it")
