"""The same customers scored by training's evaluation builder, serving's scorer (sklearn path and
fast path), batch scoring (real Feast offline store) and ``mlflow.pyfunc`` on the registered
version: identical probabilities (issue 16.4)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnops.contracts.columns import EVENT_TS, FEATURES, JOIN_KEY, feature_names
from churnops.contracts.model_input import model_frame
from churnops.data.generate import generate_churn_data, write_generated
from churnops.features.definitions import TTL
from churnops.features.store import apply
from churnops.features.training_set import build_training_set
from churnops.scoring.batch import ScoredModel, active_customers, score_active_customers
from churnops.settings import Settings
from churnops.training.candidates import fit_candidate, score
from churnops.training.frame import labels, model_input
from churnops.wiring import feast_definitions, feature_store, model_source
from serving.scoring import make_scorer, sklearn_scorer
from tests.support.serving_env import register_model

pytestmark = pytest.mark.integration


def _python_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame[feature_names()].astype(object).to_dict("records")
    ]


def test_every_path_scores_the_same_rows_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    data = generate_churn_data(customers=600, months=4, seed=5)
    write_generated(data=data, sources_dir=settings.sources_dir)
    store = feature_store(settings)
    apply(store=store, defs=feast_definitions(settings))
    snapshots = sorted(data.frame[EVENT_TS].unique())

    # Train as training does: the point-in-time frame from Feast (Int64 integers), the builder.
    first = data.frame[data.frame[EVENT_TS] == snapshots[1]]
    train = build_training_set(store=store, entity_df=first[[JOIN_KEY, EVENT_TS, "churned"]])
    assert train["tenure"].dtype == "Int64"
    x = model_input(train, columns=list(FEATURES))
    model = fit_candidate(family="logistic_regression", columns=list(FEATURES), x=x, y=labels(train)).pipeline
    version = register_model(settings=settings, model=model, example=train)

    # The rows batch scoring scores at as_of, as Feast gives them.
    as_of = pd.Timestamp(snapshots[2]) + timedelta(days=3)
    active = active_customers(sources_dir=settings.sources_dir, as_of=as_of, ttl=TTL["account"])
    entity = pd.DataFrame({JOIN_KEY: active[JOIN_KEY], EVENT_TS: as_of.tz_convert("UTC")})
    rows = build_training_set(store=store, entity_df=entity)
    rows = rows[rows[feature_names()].notna().all(axis=1)].reset_index(drop=True)
    assert len(rows) > 100

    source = model_source(settings)
    ref = source.production()
    assert ref is not None and ref.version == version
    estimator = source.load(ref).estimator  # the verified registered version, as serving loads it

    training = score(estimator, model_input(rows, columns=list(FEATURES)))
    serving = np.array(sklearn_scorer(estimator)(_python_rows(rows)))
    fast, kind = make_scorer(estimator)
    assert kind == "linear_tables"
    batch = score_active_customers(
        store=store,
        model=ScoredModel(
            name=ref.name, version=ref.version, feature_service=settings.feature_service, estimator=estimator
        ),
        sources_dir=settings.sources_dir,
        as_of=as_of.to_pydatetime(),
        ttl=TTL["account"],
        sink=None,
    )
    by_id = batch.frame.set_index(JOIN_KEY)["churn_probability"].astype("float64")
    batched = by_id.loc[rows[JOIN_KEY]].to_numpy()

    np.testing.assert_array_equal(serving, training)
    np.testing.assert_array_equal(batched, training)
    np.testing.assert_allclose(np.array(fast(_python_rows(rows))), training, rtol=0, atol=1e-12)

    # mlflow.pyfunc on the registered version takes Feast's frame as is (Int64 integers, extra
    # columns). MLflow refuses to deserialize any sklearn flavour, skops included, unless this is
    # set (its loader trusts the type list inside the artifact; registry_ext's loader never
    # does). The version was registered by this test from a model it fitted: trusted here only.
    # A download of the run's files, so MLflow writes nothing beside the registered ones.
    import mlflow.pyfunc
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run_id = client.get_model_version(settings.model_name, version).run_id
    assert run_id is not None
    (tmp_path / "download").mkdir()
    local = client.download_artifacts(run_id, "model", str(tmp_path / "download"))
    pyfunc = mlflow.pyfunc.load_model(local)
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(rows))[:, 1], training)
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(model_frame(rows)))[:, 1], training)
