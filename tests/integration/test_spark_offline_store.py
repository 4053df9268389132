"""Feast's Spark offline store and its DuckDB store give identical training sets on the same data.

One home, one set of parquet sources, two Feast projects (one per offline store) in the same SQL
registry: the frames must be equal value for value and dtype for dtype, unknown customers,
duplicate entity rows and microsecond timestamps included. The 100k-row comparison is
benchmarks/spark_offline.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnops.contracts.columns import EVENT_TS, JOIN_KEY
from churnops.features.training_set import build_training_set
from churnops.settings import Settings
from tests.support.feast import applied_store, empty_sources, seed_random_histories

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def test_spark_and_duckdb_training_sets_are_identical(settings: Settings, spark: str) -> None:
    ids = [f"{i:04d}-SPARK" for i in range(150)]
    empty_sources(settings)
    seed_random_histories(
        settings=settings, ids=ids, seed=5, start=T0, span=pd.Timedelta(days=200), max_rows=6, unit="us"
    )
    rng = np.random.default_rng(5)
    entity = pd.DataFrame(
        {
            JOIN_KEY: rng.choice([*ids, "NOBODY-1"], 500),
            EVENT_TS: T0 + pd.to_timedelta(rng.integers(0, 230 * 86_400 * 10**6, 500), unit="us"),
        }
    )
    entity = pd.concat([entity, entity.head(7)], ignore_index=True)  # duplicates stay duplicated
    entity["row"] = np.arange(len(entity))
    frames = {}
    for engine in ("duckdb", spark):
        engine_settings = settings.model_copy(
            update={"offline_store": engine, "project": f"{settings.project}{engine}"}
        )
        store = applied_store(engine_settings)
        frames[engine] = build_training_set(store=store, entity_df=entity)
    duck, sparked = frames["duckdb"], frames[spark]
    assert len(sparked) == len(entity)
    assert sparked["row"].tolist() == entity["row"].tolist()
    assert duck.isna().to_numpy().sum() > 0  # the comparison covers nulls, not only values
    pd.testing.assert_frame_equal(sparked, duck, check_exact=True)
