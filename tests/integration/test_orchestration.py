"""The Dagster definitions run with Dagster's own local execution (``execute_in_process``,
``build_sensor_context``) on a real home (Feast, MLflow SQLite, registry_ext, prediction log):
a loop whose check does not fire changes nothing; one whose check fires retrains, gates and
promotes; the sensor turns one fired decision into exactly one run key, and none once it is acted on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg  # the churnops[orchestration] extra (./dev and CI install every extra)
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.policy_files import ShippedPolicy
from churnops.jobs import score_production
from churnops.orchestration.definitions import (
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


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RetrainEnv]:
    built = make_retrain_env(tmp_path / "home")
    # the Production (pre-drift) model scores the newest snapshot into the prediction log
    score_production(settings=built.settings, as_of=built.data.last_snapshot)
    yield built
    built.close()


def _resource(env: RetrainEnv, policy: Path) -> ChurnOpsResource:
    return ChurnOpsResource(home=str(env.settings.home), retrain_policy=str(policy), now=env.now.isoformat())


def _skipped(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED" and e.step_key}


def test_definitions_load() -> None:
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {"churn_loop", "churn_retrain"}
    assert repo.get_schedule_def("nightly_loop").cron_schedule == "0 2 * * *"
    assert repo.get_sensor_def("retrain_decision_sensor").job_name == "churn_retrain"


def test_loop_not_fired_then_fired_and_the_sensor_keys_one_run_per_decision(
    env: RetrainEnv, tmp_path: Path
) -> None:
    quiet, drifty = tmp_path / "quiet.yaml", tmp_path / "drifty.yaml"
    write_over_shipped(quiet, ShippedPolicy.RETRAIN, QUIET)
    write_over_shipped(drifty, ShippedPolicy.RETRAIN, DRIFTY)
    name = env.settings.model_name
    before = env.registry.production().version

    # not fired: the loop reports drift, records the decision, and skips train and promote
    result = churn_loop.execute_in_process(resources={"churnops": _resource(env, quiet)})
    assert result.success
    assert _skipped(result) == {"train_and_gate", "promote"}
    decisions = list_decisions(env.registry.engine, name=name)
    assert [d.fired for d in decisions] == [False]
    assert env.registry.production().version == before

    # fired: drift in the window -> challenger -> gates -> Production, with provenance
    result = churn_loop.execute_in_process(resources={"churnops": _resource(env, drifty)})
    assert result.success, result
    assert _skipped(result) == set()
    fired = list_decisions(env.registry.engine, name=name)[-1]
    assert fired.fired and fired.trigger is not None and fired.trigger.value == "drift"
    assert fired.report and fired.report.startswith("runs:/")
    new = env.registry.production()
    assert new.version != before
    assert new.tags["churnops.trigger"] == "drift"
    assert new.tags["churnops.decision_id"] == str(fired.id)
    assert new.tags["churnops.drift_report"] == fired.report
    assert {t.trigger for t in env.registry.audit(version=new.version)} == {"drift"}
    # the provenance is on the MLflow model version too (the MLflow UI shows it)
    mlflow_tags = env.registry.client.get_model_version(name, str(new.version)).tags
    assert mlflow_tags["churnops.trigger"] == "drift" and mlflow_tags["churnops.decision_id"] == str(fired.id)
    shown = CliRunner().invoke(
        app,
        ["registry", "show", str(new.version)],
        env={"CHURNOPS_HOME": str(env.settings.home), "COLUMNS": "80"},
    )
    assert shown.exit_code == 0, shown.output
    assert "Provenance" in shown.output and f"{fired.id}" in shown.output and "drift" in shown.output
    assert result.output_for_node("promote") is True

    # the sensor: the fired decision already produced a version -> nothing to request
    resources = {"churnops": _resource(env, drifty)}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(retrain_decision_sensor(context), dg.SkipReason)

        # a check recorded elsewhere (`churnops retrain check`) fires again: one run key for it
        from churnops.jobs import check_retrain
        from churnops.retraining import load_policy

        score_production(settings=env.settings, as_of=env.data.last_snapshot)
        from churnops.jobs import drift_report

        drift_report(settings=env.settings, version=str(new.version), as_of=env.now)
        later = env.now + timedelta(hours=1)
        record = check_retrain(settings=env.settings, policy=load_policy(drifty), now=later)
        assert record.fired, record.reasons
        first = retrain_decision_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        again = retrain_decision_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(first, dg.RunRequest) and isinstance(again, dg.RunRequest)
        assert first.run_key == again.run_key == f"decision-{record.id}"

        run = churn_retrain.execute_in_process(
            run_config=first.run_config, resources=resources, instance=instance
        )
        assert run.success
        # the same window again: the challenger is no better than Production, so the gates stop it
        # and Production stays; the decision counts as acted on all the same (one verdict, one retrain)
        assert _skipped(run) == {"promote"}
        assert env.registry.production().version == new.version
        assert isinstance(
            retrain_decision_sensor(dg.build_sensor_context(instance=instance, resources=resources)),
            dg.SkipReason,
        )


def test_the_loop_compacts_closed_partitions_first_while_serving_writes(tmp_path: Path) -> None:
    """``compact_log`` runs before ``monitor`` and, under Dagster's in-process executor, merges the
    part files of the days before the loop's "now" into one per day, leaves today's partition and
    batch files alone, and loses or doubles no row that a writer adds meanwhile."""
    import threading
    from datetime import UTC, datetime

    import pyarrow.compute as pc

    from churnops.contracts.prediction_log import COLUMNS, read_prediction_log, write_columns

    assert [n.name for n in churn_loop.graph.nodes_in_topological_order][:2] == ["compact_log", "monitor"]
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
            op_selection=["compact_log"],
        )
    finally:
        stop.set()
        writer.join()
    assert result.success
    done = result.output_for_node("compact_log")
    assert {c["day"] for c in done["compacted"]} == set(days[:2])
    assert not any(c["rows_in"] != c["rows_out"] for c in done["compacted"])
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
