"""The fast path's direct reader on a real Redis and a real Feast repo, beyond the store matrix of
test_fastpath_stores.py: it equals Feast's get_online_features on projected, renamed and
versioned views with sub-second event times, falls back to Feast when its self-check finds a
difference, and ``auto`` uses the direct paths only on the Feast version the codec was verified
against."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pandas as pd
import pytest
import redis
from feast import FeatureService, FeatureStore

from churnops.contracts.online import OnlineRow
from churnops.features.fastpath.feast_private import VERIFIED_FEAST_VERSION
from churnops.features.fastpath.reader import LayoutUnsupported, RedisReader, first_difference
from churnops.features.materialize import materialize
from churnops.features.online import ServiceLayout, fetch_online, service_layout
from churnops.settings import Settings
from churnops.wiring import feast_definitions, repo_config
from serving.features import FeastReader
from serving.runtime import make_reader
from tests.support.feast import applied_store, seed_random_histories
from tests.support.redis_keys import delete_project_keys, project_keys

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-05-01", tz="UTC")
AT = pd.Timestamp("2024-09-01", tz="UTC")
OTHER_FEAST = "0.66.0"
READER_LOG = "churnops.features.fastpath.reader"


def seed(settings: Settings, customers: int = 40) -> list[str]:
    """Random histories with sub-second event times (and some customers with no rows at all)."""
    ids = [f"{i:04d}-CODEC" for i in range(customers)]
    seed_random_histories(
        settings=settings, ids=ids, seed=5, start=T0, span=pd.Timedelta(days=120), max_rows=4, unit="us"
    )
    return ids


def read(reader: RedisReader, ids: list[str]) -> list[OnlineRow]:
    async def go() -> list[OnlineRow]:
        try:
            return await reader.fetch(ids)
        finally:
            await reader.aclose()

    return asyncio.run(go())


def logged(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def dump(client: Any, project: str) -> dict[bytes, dict[bytes, bytes]]:
    return {key: client.hgetall(key) for key in project_keys(client=client, project=project)}


@pytest.fixture
def redis_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url, "redis_timeout_ms": 2000})


def versioned_store(settings: Settings) -> tuple[FeatureStore, FeatureService]:
    """Feast's online view versioning on, ``account`` at v1, and a service that projects it:
    a feature subset under another name (``with_name``)."""
    config = repo_config(settings)
    config.registry.enable_online_feature_view_versioning = True
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(repo_path=str(settings.feast_dir), config=config)
    defs = feast_definitions(settings)
    defs.views["account"].version = "v1"
    projected = FeatureService(
        name="churn_projected",
        features=[
            defs.views["profile"][["gender", "senior_citizen"]],
            defs.views["account"][["tenure", "contract", "monthly_charges"]].with_name("acct"),
            defs.views["services"],
        ],
    )
    store.apply([*defs.objects(), projected])  # type: ignore[arg-type]
    return store, projected


def test_reader_equals_feast_on_projected_and_versioned_views(
    redis_settings: Settings, redis_url: str
) -> None:
    ids = [*seed(redis_settings), "NOBODY-1"]
    store, projected = versioned_store(redis_settings)
    client = redis.Redis.from_url(redis_url)
    dumps = {}
    for writer in ("feast", "auto"):
        delete_project_keys(client=client, project=redis_settings.project)
        result = materialize(store=store, end=AT.to_pydatetime(), writer=writer)  # type: ignore[arg-type]
        assert set(result.writers.values()) == {"feast" if writer == "feast" else "direct"}
        dumps[writer] = dump(client, redis_settings.project)
    assert dumps["auto"] == dumps["feast"] and len(dumps["feast"]) > 20  # same bytes, versioned names too
    ts_fields = {f for fields in dumps["feast"].values() for f in fields if f.startswith(b"_ts:")}
    assert ts_fields == {b"_ts:profile", b"_ts:account_v1", b"_ts:services"}

    subsecond = 0
    rows = {}
    for name in ("churn_v1", projected.name):
        layout = service_layout(store=store, feature_service=name)
        reader = RedisReader(redis_url=redis_url, store=store, layout=layout, timeout_ms=2000)
        assert reader.self_check() is None
        direct = read(reader, ids)
        feast = fetch_online(store=store, layout=layout, customer_ids=ids)
        assert first_difference(direct=direct, feast=feast) is None
        assert [r.features for r in direct] == [r.features for r in feast]
        assert [r.event_timestamps for r in direct] == [r.event_timestamps for r in feast]
        statuses = {r.status for r in direct}
        assert "unknown_customer" in statuses and statuses & {"stale_features", "missing_features"}
        subsecond += sum(1 for r in direct for ts in r.event_timestamps.values() if ts and ts.microsecond)
        rows[name] = direct
    # The projection built from account(version="v1") is pinned and reads account_v1. churn_v1
    # was built before the pin: Feast 0.67 reads it unversioned (with_projection drops the
    # view's current version) and finds no account row, though it wrote one; the codec
    # resolves names through Feast's own functions, so both readers agree on that too.
    assert any(r.features["tenure"] is not None for r in rows[projected.name])
    assert all(r.features["tenure"] is None for r in rows["churn_v1"])
    assert subsecond > 20  # microsecond event times survived both readers identically
    assert set(service_layout(store=store, feature_service=projected.name).view_of) == {
        "gender",
        "senior_citizen",
        "tenure",
        "contract",
        "monthly_charges",
        *(f.name for f in store.get_feature_view("services").features),
    }
    client.close()


def test_self_check_falls_back_to_feast_on_a_corrupted_hash(
    redis_settings: Settings, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ids = seed(redis_settings)
    store = applied_store(redis_settings)
    materialize(store=store, end=AT.to_pydatetime())
    layout = service_layout(store=store, feature_service="churn_v1")
    with caplog.at_level(logging.WARNING, logger=READER_LOG):
        healthy = RedisReader(redis_url=redis_url, store=store, layout=layout, timeout_ms=2000)
        healthy.warm_up()
    assert healthy.active == "redis" and not logged(caplog, READER_LOG)

    # One customer's account timestamp overwritten with an empty value: Feast reads that as
    # event time 0 with the values present, the direct reader as no account row.
    client = redis.Redis.from_url(redis_url)
    victim = next(
        cid for cid, key in zip(ids, healthy.keys(ids), strict=True) if client.hexists(key, "_ts:account")
    )
    client.hset(healthy.keys([victim])[0], "_ts:account", b"")
    client.close()
    reader = RedisReader(
        redis_url=redis_url,
        store=store,
        layout=layout,
        timeout_ms=2000,
        fallback=lambda: FeastReader(store=store, layout=layout, deadline_s=4.0),
    )
    problem = reader.self_check()
    assert problem is not None and victim in problem
    # Without a fallback to serve through, the disagreement is refused, not served.
    strict = RedisReader(redis_url=redis_url, store=store, layout=layout, timeout_ms=2000)
    with pytest.raises(LayoutUnsupported, match=f"disagrees.*{victim}"):
        strict.warm_up()
    with caplog.at_level(logging.WARNING, logger=READER_LOG):
        reader.warm_up()
    assert reader.active == "feast"
    [line] = logged(caplog, READER_LOG)
    assert "disagrees" in line and victim in line and "churn_v1" in line
    # From now on the service reads through Feast: the victim's account values come back.
    rows = read(reader, [victim, ids[0]])
    assert (
        first_difference(
            direct=rows, feast=fetch_online(store=store, layout=layout, customer_ids=[victim, ids[0]])
        )
        is None
    )
    assert rows[0].features["contract"] is not None and "contract" not in rows[0].missing


def test_auto_uses_feast_on_another_feast_version(
    redis_settings: Settings, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed(redis_settings, customers=10)
    store = applied_store(redis_settings)
    with caplog.at_level(logging.WARNING, logger="churnops.features.materialize"):
        result = materialize(store=store, end=AT.to_pydatetime(), feast_version=OTHER_FEAST)
    assert set(result.writers.values()) == {"feast"}
    [line] = logged(caplog, "churnops.features.materialize")  # one line for the run, not per view
    assert OTHER_FEAST in line and VERIFIED_FEAST_VERSION in line
    # Asked for explicitly, the direct writer still runs (its encoders check themselves).
    forced = materialize(store=store, end=AT.to_pydatetime(), writer="direct", feast_version=OTHER_FEAST)
    assert set(forced.writers.values()) == {"direct"}
    assert set(materialize(store=store, end=AT.to_pydatetime()).writers.values()) == {"direct"}

    layout: ServiceLayout = service_layout(store=store, feature_service="churn_v1")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serving.runtime"):
        fallback = make_reader(settings=redis_settings, store=store, layout=layout, feast_version=OTHER_FEAST)
    assert isinstance(fallback, FeastReader)
    [line] = logged(caplog, "serving.runtime")
    assert OTHER_FEAST in line and "churn_v1" in line
    assert isinstance(make_reader(settings=redis_settings, store=store, layout=layout), RedisReader)
    forced_settings = redis_settings.model_copy(update={"serving_online_reader": "redis"})
    reader = make_reader(settings=forced_settings, store=store, layout=layout, feast_version=OTHER_FEAST)
    assert isinstance(reader, RedisReader)
    feast_only = redis_settings.model_copy(update={"serving_online_reader": "feast"})
    assert isinstance(make_reader(settings=feast_only, store=store, layout=layout), FeastReader)
