"""`churnops score`: every active customer scored once, ranked, and appended to the prediction log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.columns import EVENT_TS, JOIN_KEY, feature_names
from churnops.contracts.prediction_log import read_prediction_log
from churnops.data.generate import generate_churn_data, write_generated
from churnops.features.store import apply
from churnops.settings import Settings
from churnops.wiring import feast_definitions, feature_store, model_source
from tests.support.serving_env import fit_pipeline, register_model

pytestmark = pytest.mark.integration


@pytest.fixture
def scored_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, pd.DataFrame]:
    home = tmp_path / "home"
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    data = generate_churn_data(customers=1500, months=4, seed=21)
    write_generated(data=data, sources_dir=settings.sources_dir)
    apply(store=feature_store(settings), defs=feast_definitions(settings))
    frame = data.frame
    register_model(settings=settings, model=fit_pipeline(frame), example=frame)
    return settings, frame


def test_score_ranks_every_active_customer_and_logs_each_row(
    scored_home: tuple[Settings, pd.DataFrame], tmp_path: Path
) -> None:
    settings, frame = scored_home
    snapshots = sorted(frame[EVENT_TS].unique())
    as_of = pd.Timestamp(snapshots[2]) + timedelta(days=3)  # between snapshots: the 3rd is newest
    out = tmp_path / "ranked.csv"
    result = CliRunner().invoke(app, ["score", "--as-of", as_of.isoformat(), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # Oracle: the customers in the newest snapshot <= as_of (those who churned before it are gone).
    newest = frame[frame[EVENT_TS] <= as_of][EVENT_TS].max()
    assert newest == snapshots[2] and as_of - newest <= timedelta(days=45)
    active = frame[frame[EVENT_TS] == newest].set_index(JOIN_KEY)
    assert doc["rows"] == len(active) == doc["scored"] and doc["statuses"] == {"ok": len(active)}
    assert doc["model_version"] == "1" and doc["out"] == str(out.resolve())

    ranked = pd.read_csv(out)
    assert sorted(ranked[JOIN_KEY]) == sorted(active.index)
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["churn_probability"].is_monotonic_decreasing
    assert ranked["decile"].min() == 1 and ranked["decile"].max() == 10
    assert ranked.groupby("decile").size().between(len(ranked) // 10 - 1, len(ranked) // 10 + 1).all()

    # Same probabilities as the Production model on the snapshot rows (point in time at as_of).
    source = model_source(settings)
    ref = source.production()
    assert ref is not None
    model = source.load(ref).estimator
    rows = frame[frame[EVENT_TS] == snapshots[2]].set_index(JOIN_KEY).loc[ranked[JOIN_KEY]]
    expected = model.predict_proba(rows[feature_names()])[:, 1]
    np.testing.assert_allclose(ranked["churn_probability"], expected, atol=1e-9)

    log = read_prediction_log(settings.home / "predictions").to_pandas()
    assert len(log) == doc["rows"] and set(log["endpoint"]) == {"batch"}
    assert set(log["ts"]) == {as_of.to_pydatetime().astimezone(UTC)}
    assert set(log["feature_ts"]) == {pd.Timestamp(snapshots[2]).to_pydatetime()}
    assert set(log["model_version"]) == {"1"} and log["request_id"].nunique() == 1
    logged = log.set_index(JOIN_KEY).loc[ranked[JOIN_KEY]]
    np.testing.assert_allclose(logged["score"], ranked["churn_probability"], atol=1e-12)
    assert (logged["tenure"].to_numpy() == rows["tenure"].to_numpy()).all()


def test_score_says_what_to_do_when_nothing_can_be_scored(
    scored_home: tuple[Settings, pd.DataFrame],
) -> None:
    runner = CliRunner()
    early = runner.invoke(app, ["score", "--as-of", "2020-01-01T00:00:00Z", "--json"])
    assert early.exit_code == 2
    assert "choose an --as-of inside the data" in json.loads(early.stdout)["error"]
    naive = runner.invoke(app, ["score", "--as-of", "2024-03-01T00:00:00"])
    assert naive.exit_code == 2 and "offset" in naive.stderr
    bad_out = runner.invoke(app, ["score", "--out", "scores.xlsx"])
    assert bad_out.exit_code == 2 and ".parquet or .csv" in bad_out.stderr


def test_score_without_a_production_model_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    write_generated(
        data=generate_churn_data(customers=50, months=1, seed=3), sources_dir=settings.sources_dir
    )
    result = CliRunner().invoke(app, ["score", "--as-of", datetime(2024, 1, 2, tzinfo=UTC).isoformat()])
    assert result.exit_code == 2
    assert "no Production version" in result.stderr and "churnops train" in result.stderr
