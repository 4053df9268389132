"""The direct Redis reader returns exactly what Feast's get_online_features path returns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from churnops.contracts.online import OnlineRow
from churnops.features.online import fetch_online, service_layout
from churnops.settings import Settings
from churnops.wiring import feature_store
from serving.features import RedisReader
from tests.support.serving_env import build_environment

pytestmark = pytest.mark.integration


def test_redis_reader_matches_feast(settings: Settings, redis_url: str) -> None:
    import redis

    settings = settings.model_copy(update={"redis_url": redis_url})
    env = build_environment(settings=settings, n_customers=40)
    store = feature_store(settings)
    layout = service_layout(store=store, feature_service="churn_v1")
    reader = RedisReader(redis_url=redis_url, store=store, layout=layout, timeout_ms=1000)

    # One customer loses its account view (as if never materialized): missing_features.
    partial = env.customer_ids[5]
    client = redis.Redis.from_url(redis_url)
    key = reader.keys([partial])[0]
    account_fields = [f for f in client.hkeys(key) if f == b"_ts:account"]
    from feast.infra.online_stores.helpers import _mmh3

    account_fields += [_mmh3(f"account:{name}") for name, view in layout.view_of.items() if view == "account"]
    assert client.hdel(key, *account_fields) > 0
    client.close()

    ids = [*env.customer_ids[:10], partial, *env.stale_ids[:3], "NOPE-1", "NOPE-2"]
    now = datetime.now(UTC)
    expected = fetch_online(store=store, layout=layout, customer_ids=ids, now=now)

    async def read() -> list[OnlineRow]:
        try:
            rows = await reader.fetch(ids)
        finally:
            await reader.aclose()
        return rows

    got = asyncio.run(read())
    assert [r.status for r in got] == [r.status for r in expected]
    assert {r.status for r in got} == {"ok", "missing_features", "stale_features", "unknown_customer"}
    for mine, feast in zip(got, expected, strict=True):
        assert mine.customer_id == feast.customer_id
        assert mine.stale_views == feast.stale_views
        assert sorted(mine.missing) == sorted(feast.missing)
        assert mine.features == feast.features, mine.customer_id
