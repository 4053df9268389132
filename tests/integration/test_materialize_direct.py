"""The direct Redis writer writes exactly what Feast's materialize writes, byte for byte,
keeps Feast's timestamp dedup, leaves the answer at ``end`` whatever ran before, and is read
back identically by Feast and serving's reader."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from feast import Field
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.types import String
from feast.value_type import ValueType

from churnops.contracts.columns import CREATED_TS, JOIN_KEY, VIEWS
from churnops.contracts.online import OnlineRow
from churnops.features import redis_layout
from churnops.features.materialize import DirectWriterUnsupported, materialize
from churnops.features.online import fetch_online, service_layout
from churnops.settings import Settings
from serving.features import RedisReader
from tests.support.feast import applied_store, random_view_rows, write_view
from tests.support.redis_keys import delete_project_keys, project_keys

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-01-01", tz="UTC")
AT = pd.Timestamp("2024-09-01", tz="UTC")
EARLIER = AT - pd.Timedelta(days=60)
US = pd.Timedelta(microseconds=1)


def seed(settings: Settings, customers: int = 240) -> list[str]:
    """Random histories plus the edge cases of the window and the dedupe order:
    rows exactly at the window bounds and 1 us outside them, ties on event time broken by
    ``created``, and nulls in a string, an int and a float column."""
    rng = np.random.default_rng(7)
    ids = [f"{i:04d}-EDGE" for i in range(customers)]
    for view in VIEWS:
        per = rng.integers(0, 8, customers)
        row_ids = np.repeat(ids, per).tolist()
        times = T0 + pd.to_timedelta(rng.integers(0, 300 * 24 * 60, len(row_ids)), unit="min")
        frame = random_view_rows(rng=rng, view=view, ids=row_ids, times=pd.DatetimeIndex(times))
        start = AT - pd.Timedelta(days=400 if view == "profile" else 45)
        edge_times = [AT, AT + US, start, start - US, AT - pd.Timedelta(days=3), AT - pd.Timedelta(days=3)]
        edge_ids = [f"{view}-at", f"{view}-after", f"{view}-start", f"{view}-before", "tie", "tie"]
        edges = random_view_rows(rng=rng, view=view, ids=edge_ids, times=pd.DatetimeIndex(edge_times))
        edges[CREATED_TS] = [*edges[CREATED_TS][:4], AT - pd.Timedelta(days=2), AT - pd.Timedelta(days=1)]
        frame = pd.concat([frame, edges], ignore_index=True)
        nulls = rng.random(len(frame)) < 0.05
        for col in frame.columns[3:]:
            if frame[col].dtype == np.int64:
                frame[col] = frame[col].astype("Int64")
            frame.loc[nulls, col] = None
        write_view(settings=settings, view=view, frame=frame, parts=2)
    return [*ids, *(f"{v}-{e}" for v in VIEWS for e in ("at", "after", "start", "before")), "tie", "NOBODY"]


def dump(client: Any, project: str) -> dict[bytes, tuple[list[bytes], dict[bytes, bytes], int]]:
    """Every hash of this test's Feast project: field order (HKEYS), HGETALL and TTL."""
    return {
        key: (client.hkeys(key), client.hgetall(key), client.ttl(key))
        for key in project_keys(client=client, project=project)
    }


def values(raw: dict[bytes, tuple[list[bytes], dict[bytes, bytes], int]]) -> dict[bytes, Any]:
    """A dump without the field order: what a reader sees, and the key TTL."""
    return {key: (fields, ttl) for key, (_, fields, ttl) in raw.items()}


def online(store: Any, ids: list[str]) -> Any:
    """Feast's own read path, as a proto: values, statuses and event timestamps per feature."""
    service = store.get_feature_service("churn_v1")
    return store.get_online_features(features=service, entity_rows=[{JOIN_KEY: i} for i in ids]).proto


@pytest.fixture
def redis_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url, "redis_timeout_ms": 5000})


def test_direct_writer_writes_feast_bytes_and_dedups(redis_settings: Settings, redis_url: str) -> None:
    ids = seed(redis_settings)
    store = applied_store(redis_settings)
    client = redis.Redis.from_url(redis_url)
    states: dict[str, Any] = {}
    # (1) one window, two older-after-newer sequences and one newer-after-older, per writer.
    sequences = {
        "at": [AT],
        "earlier": [EARLIER],
        "newer_then_older": [AT, EARLIER],
        "older_then_newer": [EARLIER, AT],
    }
    for writer in ("feast", "direct"):
        for name, ends in sequences.items():
            delete_project_keys(client=client, project=redis_settings.project)
            for end in ends:
                result = materialize(store=store, end=end.to_pydatetime(), writer=writer)
                assert set(result.writers.values()) == {writer}
            states[f"{writer}/{name}"] = (dump(client, redis_settings.project), online(store, ids))
    for name in sequences:
        feast_raw, feast_online = states[f"feast/{name}"]
        direct_raw, direct_online = states[f"direct/{name}"]
        assert len(direct_raw) > len(ids) // 2
        assert direct_raw.keys() == feast_raw.keys(), name
        for key in feast_raw:
            assert direct_raw[key] == feast_raw[key], (name, key)  # field order, bytes and TTL
        assert direct_online == feast_online, name  # values, statuses, event timestamps
    # (2) Each run leaves the online store equal to the offline answer at its end (issue 10.2):
    # an older window after a newer one replaces the newer values and removes customers that
    # only exist later, so the order of runs does not matter, for either writer.
    # (Field values and TTLs; the order of a hash's fields depends on the order of the writes.)
    at_raw, earlier_raw = states["direct/at"][0], states["direct/earlier"][0]
    assert values(states["direct/newer_then_older"][0]) == values(earlier_raw)
    assert values(states["direct/older_then_newer"][0]) == values(at_raw)
    # The two windows really differ: other bytes on many shared fields, other customers.
    ts = b"_ts:account"
    overlap = [k for k, (_, f, _) in at_raw.items() if ts in f and ts in earlier_raw.get(k, ([], {}, 0))[1]]
    assert all(earlier_raw[k][1][ts] != at_raw[k][1][ts] for k in overlap)
    assert len(overlap) > 20
    assert at_raw.keys() != earlier_raw.keys()
    # Feast after direct (and direct after Feast) at an older end: the older answer.
    delete_project_keys(client=client, project=redis_settings.project)
    materialize(store=store, end=AT.to_pydatetime(), writer="direct")
    materialize(store=store, end=EARLIER.to_pydatetime(), writer="feast")
    assert values(dump(client, redis_settings.project)) == values(earlier_raw)
    delete_project_keys(client=client, project=redis_settings.project)
    materialize(store=store, end=AT.to_pydatetime(), writer="feast")
    materialize(store=store, end=EARLIER.to_pydatetime(), writer="direct")
    assert values(dump(client, redis_settings.project)) == values(earlier_raw)
    materialize(store=store, end=AT.to_pydatetime(), writer="direct")
    # Window edges and the created tie-break made it through the same way.
    got = {
        r.customer_id: r
        for r in fetch_online(
            store=store,
            layout=service_layout(store=store, feature_service="churn_v1"),
            customer_ids=ids,
            now=AT.to_pydatetime(),
        )
    }
    for view in ("account", "services"):
        assert got[f"{view}-at"].event_timestamps[view] is not None
        assert got[f"{view}-start"].event_timestamps[view] is not None
        assert got[f"{view}-after"].status == "unknown_customer"
        assert got[f"{view}-before"].status == "unknown_customer"
    assert got["tie"].event_timestamps["account"] == (AT - pd.Timedelta(days=3)).to_pydatetime()


def test_readers_agree_after_direct_writer(redis_settings: Settings, redis_url: str) -> None:
    """(3) serving's RedisReader and fetch_online (Feast's read path) return the same rows."""
    ids = seed(redis_settings, customers=120)
    store = applied_store(redis_settings)
    result = materialize(store=store, end=AT.to_pydatetime())  # the default on Redis
    assert set(result.writers.values()) == {"direct"}
    # The registry records the window as Feast's materialize does.
    account = store.registry.get_feature_view("account", store.project, allow_cache=False)
    assert account.materialization_intervals[-1][1] == AT.to_pydatetime()
    layout = service_layout(store=store, feature_service="churn_v1")
    reader = RedisReader(redis_url=redis_url, store=store, layout=layout, timeout_ms=5000)

    async def read() -> list[OnlineRow]:
        try:
            return await reader.fetch(ids)
        finally:
            await reader.aclose()

    direct_rows = asyncio.run(read())
    feast_rows = fetch_online(store=store, layout=layout, customer_ids=ids)
    assert [r.customer_id for r in direct_rows] == ids
    statuses = set()
    for mine, theirs in zip(direct_rows, feast_rows, strict=True):
        assert mine.features.keys() == theirs.features.keys()
        assert mine.features == theirs.features, mine.customer_id
        assert mine.event_timestamps == theirs.event_timestamps, mine.customer_id
        assert mine.status == theirs.status, mine.customer_id
        assert mine.missing == theirs.missing
        assert mine.stale_views == theirs.stale_views
        statuses.add(mine.status)
    # Read in 2026, the 2024 values are past their TTL: both readers call them stale.
    assert {"stale_features", "unknown_customer", "missing_features"} <= statuses


def test_key_ttl_as_feast(redis_settings: Settings, redis_url: str) -> None:
    """With Feast's key_ttl_seconds set, both writers expire the same keys the same way."""
    seed(redis_settings, customers=40)
    store = applied_store(redis_settings)
    store.config.online_store.key_ttl_seconds = 86_400
    client = redis.Redis.from_url(redis_url)
    dumps = []
    for writer in ("feast", "direct"):
        delete_project_keys(client=client, project=redis_settings.project)
        materialize(store=store, end=AT.to_pydatetime(), writer=writer)
        dumps.append(dump(client, redis_settings.project))
    feast_raw, direct_raw = dumps
    assert feast_raw and direct_raw.keys() == feast_raw.keys()
    for key, (order, fields, ttl) in feast_raw.items():
        assert direct_raw[key][:2] == (order, fields)
        assert 86_300 < ttl <= 86_400 and 86_300 < direct_raw[key][2] <= 86_400


def test_value_and_key_encoding_match_feast() -> None:
    """The codec's value and key encoders against Feast's own functions, edge values included."""
    import pyarrow as pa

    columns = {
        ValueType.DOUBLE: pa.array(
            [1.5, None, float("nan"), 0.0, -0.0, float("inf"), -1e300, 29.85], pa.float64()
        ),
        ValueType.INT64: pa.array([1, None, 0, -5, 2**40, 1200], pa.int64()),
        ValueType.STRING: pa.array(["Yes", None, "", "é", "No phone service"], pa.string()),
    }
    for value_type, column in columns.items():
        for col in (column, column.drop_null()):
            want = python_values_to_proto_values(col.to_numpy(zero_copy_only=False), value_type)
            assert redis_layout.encode_values(col, value_type) == [v.SerializeToString() for v in want]
    config = SimpleNamespace(project="churnops", entity_key_serialization_version=3)
    codec = redis_layout.entity_key_codec(config=config, join_key=Field(name=JOIN_KEY, dtype=String))
    assert codec.fast_head is not None
    ids = ["7590-VHVEG", "é-1", "x" * 300]
    want_keys = [
        _redis_key("churnops", EntityKey(join_keys=[JOIN_KEY], entity_values=[Value(string_val=i)]), 3)
        for i in ids
    ]
    assert codec.encode(ids) == want_keys


def test_direct_writer_refuses_sqlite(settings: Settings) -> None:
    seed(settings, customers=20)
    store = applied_store(settings)
    with pytest.raises(DirectWriterUnsupported, match="Redis"):
        materialize(store=store, end=AT.to_pydatetime(), writer="direct")
    result = materialize(store=store, end=AT.to_pydatetime())  # default: Feast on SQLite
    assert set(result.writers.values()) == {"feast"}
