"""Online values equal offline point-in-time values at the materialization time,
on the embedded SQLite online store and on a real Redis."""

from __future__ import annotations

import pandas as pd
import pytest

from churnops.contracts.columns import EVENT_TS, JOIN_KEY, feature_names
from churnops.features.materialize import materialize
from churnops.features.online import fetch_online, service_layout
from churnops.features.training_set import build_training_set
from churnops.settings import Settings
from tests.support.feast import applied_store, seed_random_histories

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-01-01", tz="UTC")
AT = pd.Timestamp("2024-09-01", tz="UTC")


def seed_histories(settings: Settings, customers: int = 300) -> list[str]:
    ids = [f"{i:04d}-PARTY" for i in range(customers)]
    seed_random_histories(
        settings=settings, ids=ids, seed=11, start=T0, span=pd.Timedelta(days=300), max_rows=9
    )
    return ids


def check_parity(settings: Settings) -> None:
    ids = seed_histories(settings)
    store = applied_store(settings)
    materialize(store=store, end=AT.to_pydatetime())
    sample = [*ids[::3], "NOBODY-0000"]
    offline = build_training_set(
        store=store, entity_df=pd.DataFrame({JOIN_KEY: sample, EVENT_TS: [AT] * len(sample)})
    )
    layout = service_layout(store=store, feature_service="churn_v1")
    online = fetch_online(store=store, layout=layout, customer_ids=sample, now=AT.to_pydatetime())
    assert [r.customer_id for r in online] == sample
    compared = 0
    for row, (_, want) in zip(online, offline.iterrows(), strict=True):
        for name in feature_names():
            expected = None if pd.isna(want[name]) else want[name]
            got = row.features[name]
            if isinstance(expected, float) or isinstance(got, float):
                assert got == pytest.approx(expected), (row.customer_id, name)
            else:
                assert got == expected, (row.customer_id, name, got, expected)
            compared += 1
        all_null = all(pd.isna(want[n]) for n in feature_names())
        assert (row.status == "unknown_customer") == all_null
        assert row.stale_views == ()  # materialized with the TTL window: nothing stale at AT
    assert online[-1].status == "unknown_customer"
    statuses = [r.status for r in online]
    assert statuses.count("ok") >= 5 and statuses.count("missing_features") >= 5  # both paths seen
    assert compared == len(sample) * len(feature_names())


def test_parity_sqlite(settings: Settings) -> None:
    check_parity(settings)


def test_parity_redis(settings: Settings, redis_url: str) -> None:
    check_parity(settings.model_copy(update={"redis_url": redis_url}))


def test_parity_redis_cluster(
    settings: Settings, redis_cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On a real 3-node Redis Cluster: Feast's cluster client writes, and the log says why the
    direct writer (single-node Lua batches) is not used."""
    caplog.set_level("WARNING", logger="churnops.features.materialize")
    check_parity(settings.model_copy(update={"redis_url": redis_cluster, "redis_type": "redis_cluster"}))
    assert "direct Redis writer not used (the direct path supports plain Redis, not redis_cluster)" in (
        caplog.text
    )


@pytest.mark.slow  # Feast's Spark job per view, in the shared local[2] session
def test_parity_spark(settings: Settings, spark: str) -> None:
    """Materialization and training sets through Feast's Spark offline store."""
    check_parity(settings.model_copy(update={"offline_store": spark}))


def test_stale_values_are_flagged_later(settings: Settings) -> None:
    """Feast returns an old value as present; fetch_online calls it stale past the TTL."""
    seed_histories(settings, customers=50)
    store = applied_store(settings)
    materialize(store=store, end=AT.to_pydatetime())
    layout = service_layout(store=store, feature_service="churn_v1")
    ids = [f"{i:04d}-PARTY" for i in range(50)]
    later = (AT + pd.Timedelta(days=400)).to_pydatetime()
    rows = fetch_online(store=store, layout=layout, customer_ids=ids, now=later)
    known = [r for r in rows if r.status != "unknown_customer"]
    assert known and all(r.status in ("stale_features", "missing_features") for r in known)
    assert any("account" in r.stale_views for r in known)
