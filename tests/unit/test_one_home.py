"""One home per fact: a shared literal appears in the source only where it is defined.

Each entry is a quoted literal and the one file allowed to spell it; every other module imports
the constant. A failure names the files that re-declare it.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pandas as pd
import pytest

from churnops.contracts.monitoring_terms import MATURED_COLUMNS, PREDICTION_INPUT, matured_schema
from churnops.contracts.online import RowStatus, RowStatusName, complete_rows, is_missing, scored_status
from churnops.contracts.prediction_log import (
    COLUMNS,
    LOG_COLUMNS,
    LogRecord,
    log_schema,
    prediction_log_table,
    read_prediction_log,
)
from serving.prediction_log import LogBatch, parquet_sink

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("churnops", "registry_ext", "serving", "monitoring", "feature_repo")

MLFLOW_KEYS = "churnops/contracts/mlflow_keys.py"
HOMES = {
    '"churn_v1"': "churnops/contracts/columns.py",  # the FeatureService name: FEATURE_SERVICE
    # MLflow names of versions and training runs: one writer, readers elsewhere
    '"churnops."': MLFLOW_KEYS,  # the training run's tag prefix
    '"churnops.trigger"': MLFLOW_KEYS,
    '"churnops.decision_id"': MLFLOW_KEYS,
    '"churnops.drift_report"': MLFLOW_KEYS,
    '"churnops.training_labels_start"': MLFLOW_KEYS,
    '"churnops.training_labels_end"': MLFLOW_KEYS,
    '"churnops.heartbeat"': MLFLOW_KEYS,
    '"churnops.manifest"': MLFLOW_KEYS,
    '"churnops.signature"': MLFLOW_KEYS,
    '"churnops.signing_key_id"': MLFLOW_KEYS,
    '"feast.feature_service"': MLFLOW_KEYS,
    '"feast.feature_refs"': MLFLOW_KEYS,
    '"mlflow.experimentKind"': MLFLOW_KEYS,
    '"custom_model_development"': MLFLOW_KEYS,
    '"mlflow.source.git.commit"': MLFLOW_KEYS,
    '"test_roc_auc"': None,  # built once, by split_metric, as TEST_ROC_AUC
    # a drift report's window, on monitoring runs only (a version's window is training_labels_*)
    '"churnops.window_start"': "churnops/contracts/monitoring_runs.py",
    '"churnops.window_end"': "churnops/contracts/monitoring_runs.py",
    '"score"': "churnops/contracts/columns.py",  # the score column: SCORE
    '"model"': "churnops/contracts/artifacts.py",  # the run's model directory: MODEL_PATH
    # which way a metric is better: DIRECTIONS (gates, gain, compare and monitoring read it)
    '"higher is better"': "churnops/contracts/metric_directions.py",
    '"lower is better"': "churnops/contracts/metric_directions.py",
    # a served row's status: RowStatus (serving, batch scoring and the CLI compare members)
    '"unknown_customer"': "churnops/contracts/online.py",
    '"stale_features"': "churnops/contracts/online.py",
    '"missing_features"': "churnops/contracts/online.py",
    # a drift report's status: ReportStatus (monitoring writes, retraining and the CLI read)
    '"no_drift"': "churnops/contracts/monitoring_terms.py",
    '"insufficient_data"': "churnops/contracts/monitoring_terms.py",
    # the prediction log's columns: LOG_COLUMNS (serving and batch scoring write, monitoring reads)
    '"feature_ts"': "churnops/contracts/prediction_log.py",
    '"request_id"': "churnops/contracts/prediction_log.py",
    '"label_lag_s"': "churnops/contracts/monitoring_terms.py",
    '"label_created"': "churnops/contracts/monitoring_terms.py",
    # a column kind's type in each system: KIND_TYPES (one table; Feast's by member name)
    '"long"': "churnops/contracts/columns.py",
    '"double"': "churnops/contracts/columns.py",
    '"INT64"': "churnops/contracts/columns.py",
    '"FLOAT64"': "churnops/contracts/columns.py",
    # the paths under the home: HomeLayout (settings expose it as Settings.layout)
    '"sources"': "churnops/contracts/home_layout.py",
    '"quarantine"': "churnops/contracts/home_layout.py",
    '"registry.db"': "churnops/contracts/home_layout.py",
    '"online.db"': "churnops/contracts/home_layout.py",
    '"mlflow.db"': "churnops/contracts/home_layout.py",
    '"signing_key.pem"': "churnops/contracts/home_layout.py",
    '"trusted_keys"': "churnops/contracts/home_layout.py",
    '"predictions-spool"': "churnops/contracts/home_layout.py",
    '"last_verified_model.json"': "churnops/contracts/home_layout.py",
    '"evidently"': "churnops/contracts/home_layout.py",
    '"reports"': "churnops/contracts/home_layout.py",
    '"simulations"': "churnops/contracts/home_layout.py",
    '"training_set.parquet"': "churnops/contracts/home_layout.py",
    # a comparison's section titles: display text only, picked by SectionId
    '"Gate results at registration"': "registry_ext/compare.py",
}

OTHER_MEANINGS = {
    '"score"': {
        "churnops/cli.py": "the `churnops score` command",
        "churnops/commands/home_guard.py": "the `churnops score` command",
        "serving/metrics.py": "the Prometheus histogram's name",
        "monitoring/drift.py": "a drift check's statistic in the report JSON",
        "churnops/commands/monitor.py": "a drift check's statistic in the report JSON",
        "churnops/commands/demo.py": "a drift check's statistic in the report JSON",
        "churnops/contracts/loop.py": "the loop's step name (LoopStep.SCORE)",
    },
    '"sources"': {
        "churnops/commands/home_guard.py": "a command's need (the sources exist)",
        "churnops/commands/generate.py": "a summary row's label",
        "churnops/data/ingest.py": "a key of the ingest JSON",
    },
    '"request_id"': {
        "churnops/scoring/batch.py": "a key of the batch run's JSON",
        "serving/runtime.py": "a key of the response JSON",
    },
    '"model"': {
        "churnops/training/candidates.py": "the sklearn Pipeline step",
        "churnops/training/plots.py": "a plot legend",
        "churnops/commands/registry.py": "a table header",
        "monitoring/drift.py": "a key of the report JSON",
        # the Pushgateway grouping label = the alert label the rules and loop events share
        "churnops/contracts/loop_events.py": "LABEL_MODEL, the alert label Alertmanager groups by",
    },
    '"INT64"': {
        "churnops/features/fastpath/codec.py": "Feast's ValueType (a proto value's type), not a kind's",
    },
}
"""Files where a shared literal spells something else that happens to have the same word."""


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(("literal", "home"), sorted(HOMES.items()))
def test_a_shared_literal_appears_only_in_its_home(literal: str, home: str | None) -> None:
    spelled = [str(p.relative_to(ROOT)) for p in _sources() if literal in p.read_text(encoding="utf-8")]
    spelled = [file for file in spelled if file not in OTHER_MEANINGS.get(literal, {})]
    assert spelled == ([] if home is None else [home])


def test_the_response_schema_lists_exactly_the_row_statuses() -> None:
    assert get_args(RowStatusName) == tuple(s.value for s in RowStatus)


def test_one_missing_value_rule_for_served_and_batch_rows() -> None:
    values = [1.0, None, float("nan"), "Yes", 0]
    frame = pd.DataFrame({"a": values})
    assert [not is_missing(v) for v in values] == list(complete_rows(frame))
    assert scored_status(RowStatus.OK, [1.0, float("nan")]) is RowStatus.MISSING_FEATURES
    assert scored_status(RowStatus.STALE_FEATURES, [None]) is RowStatus.STALE_FEATURES


def test_one_column_list_makes_the_schema_the_sql_table_and_the_monitoring_inputs() -> None:
    import sqlalchemy as sa

    schema = log_schema()
    table = prediction_log_table(sa.MetaData())
    assert schema.names == list(COLUMNS) == [c.name for c in LOG_COLUMNS]
    assert [c.name for c in table.columns] == ["id", *COLUMNS]
    assert {c.name for c in table.columns if not c.nullable} == {
        "id",
        *(c.name for c in LOG_COLUMNS if c.required),
    }
    assert set(PREDICTION_INPUT) <= set(COLUMNS)
    matured = matured_schema()
    assert matured.names == list(MATURED_COLUMNS)
    for name in set(MATURED_COLUMNS) & set(COLUMNS):
        assert matured.field(name).type == schema.field(name).type


def test_what_serving_writes_the_monitoring_reader_reads(tmp_path: Path) -> None:
    """Writer/reader pair: serving's column batch, through the parquet sink, read back with the
    columns a label join reads (PREDICTION_INPUT)."""
    from datetime import UTC, datetime

    ts = datetime(2026, 3, 1, 12, tzinfo=UTC)
    record = LogRecord(
        request_id="r1",
        ts=ts,
        endpoint="predict",
        customer_id="c1",
        model_name="churn",
        model_version="3",
        feature_service="churn_v1",
        score=0.25,
        status=RowStatus.OK.value,
        features={"tenure": 5},
        feature_ts=datetime(2026, 2, 28, tzinfo=UTC),
    )
    batch = LogBatch()
    batch.add([record])
    assert list(batch.days["2026-03-01"]) == list(COLUMNS)
    sink = parquet_sink(tmp_path)
    for day, columns in batch.days.items():
        sink(day, columns)
    read = read_prediction_log(tmp_path, columns=list(PREDICTION_INPUT)).to_pylist()
    assert read == [
        {
            "model_version": "3",
            "customer_id": "c1",
            "ts": ts,
            "feature_ts": record.feature_ts,
            "score": 0.25,
            "status": "ok",
        }
    ]


def test_one_kind_table_gives_every_system_its_type() -> None:
    """The Feast field types (named in the table, looked up where Feast is imported), the model
    input, the MLflow signature and the stored Arrow types all read KIND_TYPES."""
    import pyarrow as pa
    from feast.types import Float64, Int64, String

    from churnops.contracts.columns import FEATURES, KIND_TYPES, arrow_type
    from churnops.contracts.model_input import MLFLOW_TYPES, NULLABLE_INTEGER, PANDAS_DTYPES, model_frame
    from churnops.contracts.prediction_log import sql_type
    from churnops.features.definitions import feast_type

    feast = {"category": String, "flag": Int64, "int": Int64, "float": Float64}
    assert {c.name: feast_type(c) for c in FEATURES} == {c.name: feast[c.kind] for c in FEATURES}
    assert {c.name: arrow_type(c) for c in FEATURES} == {c.name: KIND_TYPES[c.kind].arrow for c in FEATURES}
    assert MLFLOW_TYPES == {"category": "string", "flag": "long", "int": "long", "float": "double"}
    assert PANDAS_DTYPES == {"category": "object", "flag": "int64", "int": "int64", "float": "float64"}
    assert NULLABLE_INTEGER == "Int64"
    row = {c.name: (c.categories[0] if c.categories else 1) for c in FEATURES}
    frame = model_frame([row])
    assert {c.name: str(frame[c.name].dtype) for c in FEATURES} == {
        c.name: PANDAS_DTYPES[c.kind] for c in FEATURES
    }
    sql = {pa.string(): "TEXT", pa.int64(): "BIGINT", pa.float64(): "FLOAT"}
    for types in KIND_TYPES.values():
        assert str(sql_type(types.arrow)()) == sql[types.arrow]


def test_every_home_path_comes_from_the_layout(tmp_path: Path) -> None:
    """Writer/reader pairs of the home: the settings Feast, MLflow and signing write through,
    the home guard's checks and the prediction log's directory are the layout's paths."""
    from churnops.contracts.home_layout import HomeLayout
    from churnops.settings import Settings
    from churnops.wiring import prediction_log_dir

    # the test session points the key files elsewhere (tests/conftest.py): the defaults here
    settings = Settings(home=tmp_path, signing_key_file=None, trusted_keys_file=None)
    layout = settings.layout
    assert layout == HomeLayout(tmp_path.resolve())
    assert settings.registry_url == f"sqlite:///{layout.feast_registry}"
    assert settings.tracking_uri == f"sqlite:///{layout.mlflow_db}"
    assert settings.sources_dir == layout.sources and settings.source_dir("labels") == layout.source("labels")
    assert (settings.quarantine_dir, settings.feast_dir, settings.keys_dir) == (
        layout.quarantine,
        layout.feast,
        layout.keys,
    )
    assert (settings.signing_key_path, settings.trusted_keys_path) == (
        layout.signing_key,
        layout.trusted_keys,
    )
    assert settings.artifact_location == str(layout.artifacts)
    assert prediction_log_dir(settings) == layout.predictions
    every = [
        getattr(layout, name) for name in dir(HomeLayout) if isinstance(getattr(HomeLayout, name), property)
    ]
    assert all(path.is_relative_to(tmp_path.resolve()) for path in every)
    assert len(set(every)) == len(every)


def test_the_feast_repo_yaml_keeps_its_state_where_the_layout_says() -> None:
    """feature_store.yaml (read by Feast before any Python) names the repository home's paths."""
    import yaml

    from churnops.contracts.home_layout import HomeLayout

    repo = ROOT / "feature_repo"
    config = yaml.safe_load((repo / "feature_store.yaml").read_text(encoding="utf-8"))
    layout = HomeLayout(ROOT / ".churnops")

    def resolved(path: str) -> Path:
        return (repo / path.removeprefix("sqlite:///")).resolve()

    assert resolved(config["registry"]["path"]) == layout.feast_registry.resolve()
    assert resolved(config["online_store"]["path"]) == layout.online_store.resolve()
    assert resolved(config["mlflow"]["tracking_uri"]) == layout.mlflow_db.resolve()


def test_the_policy_defaults_live_only_in_the_shipped_policy_files() -> None:
    """No ``default_*.yaml`` beside a component: the shipped files are all in churnops/policies/."""
    stray = [
        str(p.relative_to(ROOT)) for package in PACKAGES for p in (ROOT / package).rglob("default_*.yaml")
    ]
    assert stray == []
    assert sorted(p.name for p in (ROOT / "churnops" / "policies").glob("*.yaml")) == [
        "drift.yaml",
        "gates.yaml",
        "retrain.yaml",
    ]
