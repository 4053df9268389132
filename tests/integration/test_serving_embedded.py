"""The embedded default (no services): Feast's SQLite online store read through Feast, in process."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from churnops.settings import Settings
from churnops.wiring import serving_runtime
from serving.features import FeastReader
from serving.hints import how_to_serve
from serving.metrics import ServingMetrics
from serving.runtime import ApiError
from tests.support.serving_env import build_environment

pytestmark = pytest.mark.integration


def test_runtime_scores_from_the_sqlite_online_store(settings: Settings) -> None:
    env = build_environment(settings=settings, n_customers=30)
    runtime = serving_runtime(settings, metrics=ServingMetrics(registry=CollectorRegistry()))
    try:
        assert runtime.ready()
        deployment = runtime.watcher.current
        assert deployment is not None and isinstance(deployment.reader, FeastReader)
        ids = [env.customer_ids[0], "NOPE-1", env.stale_ids[0]]
        response = asyncio.run(runtime.predict_ids(ids))
        assert not isinstance(response, ApiError)
        assert [p.status for p in response.predictions] == ["ok", "unknown_customer", "stale_features"]
        too_many = asyncio.run(runtime.predict_ids(["A"] * (settings.serving_max_ids + 1)))
        assert isinstance(too_many, ApiError) and too_many.status == 413
    finally:
        runtime.close()
    assert len(list((settings.home / "predictions").glob("date=*/*.parquet"))) == 1


def test_demo_hint_is_a_working_command() -> None:
    text = how_to_serve(customer_id="7590-VHVEG", port=3000)
    assert "churnops serve --port 3000" in text
    assert """-d '{"customer_ids": ["7590-VHVEG"]}'""" in text
