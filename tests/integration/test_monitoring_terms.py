"""One vocabulary (issue 18.3): `monitor drift`, `monitor performance`, `retrain check` and the
Pushgateway export report the same matured labels, drifted share and drifted windows for the same
window, version and as-of time, and all equal a brute-force pandas count from the raw log.

Real parts: generated data with concept drift, Feast (DuckDB/SQLite), real training, registry_ext,
batch scoring into the parquet prediction log, Evidently, MLflow (SQLite), a real Pushgateway. The
log also holds what no count may include: a repeated request, what-if rows, failed rows, and
predictions on snapshots inside the version's training window (in-sample)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.columns import EVENT_TS, JOIN_KEY, LABEL, LABEL_SOURCE
from churnops.contracts.prediction_log import (
    COLUMNS,
    PREDICT_ENDPOINT,
    WHAT_IF_ENDPOINT,
    read_prediction_log,
)
from churnops.contracts.sources import read_source
from churnops.jobs import score_production
from churnops.wiring import prediction_log_dir, prediction_log_writer
from monitoring.baseline import training_window
from tests.support.prometheus import Pushgateway
from tests.support.retrain_env import RetrainEnv, make_retrain_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HORIZON = timedelta(days=31)
DRIFT_POLICY = """name: terms
min_current_rows: 100
min_reference_rows: 100
reference_rows: 100000
current_rows: 100000
seed: 0
data_drift:
  default_threshold: 0.1
  thresholds: {tenure: 0.0001}
prediction_drift: {threshold: 0.5}
concept_drift: {alpha: 0.01, min_statistic: 0.012, min_labelled_rows: 100, min_holdout_rows: 100}
"""
RETRAIN_POLICY = "name: terms\nschedule: null\n"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RetrainEnv]:
    built = make_retrain_env(tmp_path / "home")
    yield built
    built.close()


def _cli(monkeypatch: pytest.MonkeyPatch, home: Path, *args: str, codes: tuple[int, ...] = (0,)) -> Any:
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code in codes, result.output
    return json.loads(result.stdout)


def _rows_like(batch: pd.DataFrame, **changes: Any) -> dict[str, list[Any]]:
    columns = {name: batch[name].tolist() for name in COLUMNS}
    for name, value in changes.items():
        columns[name] = value if isinstance(value, list) else [value] * len(batch)
    return columns


def _oracle_matured(
    env: RetrainEnv, *, start: datetime, end: datetime, as_of: datetime, version: str
) -> tuple[int, int]:
    """Matured labels of ``version``'s predictions made in [start, end), straight from the raw
    log and the raw label source; and the same count with no exclusion rule applied."""
    log = read_prediction_log(prediction_log_dir(env.settings)).to_pandas()
    rows = log[(log["ts"] >= start) & (log["ts"] < end) & (log["model_version"] == version)]
    labels = read_source(sources_dir=env.settings.sources_dir, name=LABEL_SOURCE)
    labels = labels[labels["created"] <= as_of].sort_values("created")
    labels = labels.drop_duplicates([JOIN_KEY, EVENT_TS], keep="last")

    def joined(frame: pd.DataFrame) -> int:
        ripe = frame[frame["feature_ts"] + HORIZON <= as_of]
        keyed = ripe.merge(labels, left_on=[JOIN_KEY, "feature_ts"], right_on=[JOIN_KEY, EVENT_TS])
        return int(keyed[LABEL].notna().sum())

    naive = joined(rows[rows["score"].notna()])
    monitored = rows[
        rows["endpoint"].isin(["predict", "batch"])
        & (rows["status"] == "ok")
        & rows["score"].notna()
        & rows[JOIN_KEY].notna()
        & rows["feature_ts"].notna()
    ]
    first = monitored.sort_values(["ts", "request_id"], kind="stable").drop_duplicates(
        ["model_version", JOIN_KEY, "feature_ts"], keep="first"
    )
    run = env.registry.client.get_run(
        env.registry.client.get_model_version(env.settings.model_name, version).run_id
    )
    fitted = training_window(run.data.params)
    assert fitted is not None
    live = first[~first["feature_ts"].between(pd.Timestamp(fitted.start), pd.Timestamp(fitted.end))]
    return joined(live), naive


def _gauges(text: str) -> dict[tuple[str, str], float]:
    """(metric, job) -> value of the version-1 series the Pushgateway holds."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model_version") == "1":
                out[(sample.name, sample.labels["job"])] = sample.value
    return out


def test_drift_performance_check_and_the_pushgateway_count_alike(
    env: RetrainEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, home = env.settings, env.settings.home
    snapshots = sorted(pd.to_datetime(env.data.frame[EVENT_TS]).unique())
    prev2, prev, last = (pd.Timestamp(s).to_pydatetime() for s in snapshots[-3:])
    for as_of in (prev2, prev, prev, last):  # the November batch twice: one copy
        score_production(settings=settings, as_of=as_of)

    # What no count may include, logged into the labels window beside November's batch.
    log = read_prediction_log(prediction_log_dir(settings)).to_pandas()
    november = log[log["ts"] == pd.Timestamp(prev)].head(40)
    in_sample_at = pd.Timestamp(snapshots[-9]).to_pydatetime()  # inside the training window (Jan-Jun)
    assert in_sample_at < env.drift_from
    sink, day = prediction_log_writer(settings), f"{prev:%Y-%m-%d}"
    later = prev + timedelta(hours=2)
    sink(day, _rows_like(november, endpoint=PREDICT_ENDPOINT, request_id="again", ts=later))
    sink(
        day, _rows_like(november, endpoint=WHAT_IF_ENDPOINT, request_id="what-if", ts=later, feature_ts=prev2)
    )
    sink(
        day, _rows_like(november, request_id="failed", ts=later, feature_ts=prev2, status="error", score=None)
    )
    sink(
        day,
        _rows_like(november, endpoint=PREDICT_ENDPOINT, request_id="old", ts=later, feature_ts=in_sample_at),
    )

    drift_policy, retrain_policy = tmp_path / "drift.yaml", tmp_path / "retrain.yaml"
    drift_policy.write_text(DRIFT_POLICY)
    retrain_policy.write_text(RETRAIN_POLICY)
    now = env.now  # two days after the newest snapshot: November's labels have matured, December's not
    start, end = last - timedelta(days=10), last + timedelta(days=1)
    gateway = Pushgateway(workdir=tmp_path / "pushgateway")
    gateway.start()
    try:
        drift = _cli(
            monkeypatch,
            home,
            "monitor",
            "drift",
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--as-of",
            now.isoformat(),
            "--policy",
            str(drift_policy),
            "--push-gateway",
            gateway.url,
        )
        counts = drift["counts"]
        labels_start, labels_end = counts["labels"]["start"], counts["labels"]["end"]
        performance = _cli(
            monkeypatch,
            home,
            "monitor",
            "performance",
            "--start",
            labels_start,
            "--end",
            labels_end,
            "--as-of",
            now.isoformat(),
            "--push-gateway",
            gateway.url,
        )
        pushed = _gauges(httpx.get(f"{gateway.url}/metrics", timeout=10).text)
    finally:
        gateway.stop()
    check = _cli(
        monkeypatch,
        home,
        "retrain",
        "check",
        "--now",
        now.isoformat(),
        "--policy",
        str(retrain_policy),
        codes=(0, 3),
    )["counts"]

    # the same window: the drift report's labels window reaches a horizon back, both read at `now`
    assert datetime.fromisoformat(labels_start) == start - HORIZON
    assert datetime.fromisoformat(labels_end) == end
    (perf,) = performance["counts"]
    assert perf["model_version"] == counts["model_version"] == check["model_version"] == "1"
    assert perf["labels"] == counts["labels"] | {"as_of": perf["labels"]["as_of"]}
    assert datetime.fromisoformat(perf["labels"]["as_of"]) == datetime.fromisoformat(
        counts["labels"]["as_of"]
    )

    # matured labels: the brute-force count, and the exclusions change it (the oracle can disagree)
    expected, naive = _oracle_matured(env, start=start - HORIZON, end=end, as_of=now, version="1")
    assert expected > 1000 and naive > expected
    assert counts["matured_labels"] == expected
    assert perf["matured_labels"] == expected
    assert check["matured_labels"] == expected
    assert pushed[("churnops_matured_labels", "churnops-drift")] == expected
    assert pushed[("churnops_matured_labels", "churnops-performance")] == expected

    # drifted share: the features the report scored and flagged, counted here
    scored = [f for f in drift["data_drift"]["features"] if f["score"] is not None]
    share = sum(f["drifted"] for f in scored) / len(scored)
    assert share > 0  # the policy's tenure threshold makes tenure drift
    assert counts["drifted_share"] == drift["data_drift"]["drifted_share"] == share
    assert check["drifted_share"] == share
    assert pushed[("churnops_drifted_share", "churnops-drift")] == share

    # drifted windows: one report, drifted when its status is drift
    assert drift["status"] == "drift"
    assert counts["drifted_windows"] == check["drifted_windows"] == 1
    assert pushed[("churnops_drifted_windows", "churnops-drift")] == 1
