"""Materialization makes the online store equal the offline answer at ``end``, deletions
included (issue 10.2): a customer gone from the sources becomes ``unknown_customer``, a view
gone for a customer becomes missing, values newer than ``end`` are replaced, on SQLite and on
Redis with both writers; and only this project's Redis keys are touched."""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from churnops.contracts.columns import EVENT_TS, JOIN_KEY, VIEWS, feature_names
from churnops.contracts.sources import read_source
from churnops.features.materialize import materialize
from churnops.features.online import fetch_online, service_layout
from churnops.features.training_set import build_training_set
from churnops.settings import Settings
from tests.support.feast import applied_store, random_view_rows, seed_random_histories, write_view
from tests.support.redis_keys import project_keys

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-01-01", tz="UTC")
AT = pd.Timestamp("2024-09-01", tz="UTC")
EARLIER = AT - pd.Timedelta(days=60)
IDS = [f"{i:04d}-GONE" for i in range(150)]


def seed(settings: Settings) -> None:
    seed_random_histories(
        settings=settings, ids=IDS, seed=5, start=T0, span=pd.Timedelta(days=300), max_rows=6
    )


def drop_customers(settings: Settings, *, everywhere: list[str], from_view: dict[str, list[str]]) -> None:
    """Re-write the sources without ``everywhere`` ids, and without some ids in one view."""
    for view in VIEWS:
        frame = read_source(sources_dir=settings.sources_dir, name=view)
        gone = set(everywhere) | set(from_view.get(view, []))
        write_view(settings=settings, view=view, frame=frame[~frame[JOIN_KEY].isin(gone)], parts=2)


def offline_at(store: Any, ids: list[str], at: pd.Timestamp) -> pd.DataFrame:
    return build_training_set(store=store, entity_df=pd.DataFrame({JOIN_KEY: ids, EVENT_TS: [at] * len(ids)}))


def assert_online_equals_offline(store: Any, at: pd.Timestamp) -> int:
    """Every id, every feature: online (at ``at``) == offline point-in-time at ``at``.
    Returns how many customers the offline answer knows."""
    offline = offline_at(store, IDS, at)
    layout = service_layout(store=store, feature_service="churn_v1")
    online = fetch_online(store=store, layout=layout, customer_ids=IDS, now=at.to_pydatetime())
    known = 0
    for row, (_, want) in zip(online, offline.iterrows(), strict=True):
        for name in feature_names():
            expected = None if pd.isna(want[name]) else want[name]
            got = row.features[name]
            if isinstance(expected, float) or isinstance(got, float):
                assert got == pytest.approx(expected), (row.customer_id, name, got, expected)
            else:
                assert got == expected, (row.customer_id, name, got, expected)
        all_null = all(pd.isna(want[n]) for n in feature_names())
        assert (row.status == "unknown_customer") == all_null, row.customer_id
        known += not all_null
    return known


def online_customers(settings: Settings, client: Any | None) -> int:
    """How many customers the online store holds anything for (counts, not reads)."""
    if client is not None:
        return len(project_keys(client=client, project=settings.project))
    with sqlite3.connect(settings.feast_dir / "online.db") as con:
        union = " UNION ".join(f'SELECT entity_key FROM "{settings.project}_{v}"' for v in VIEWS)
        return int(con.execute(f"SELECT COUNT(*) FROM ({union})").fetchone()[0])


@pytest.fixture(params=["sqlite", "redis-feast", "redis-direct"])
def target(request: pytest.FixtureRequest, settings: Settings) -> tuple[Settings, str, Any]:
    if request.param == "sqlite":
        return settings, "feast", None
    url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    return settings.model_copy(update={"redis_url": url, "redis_timeout_ms": 5000}), request.param[6:], client


def test_removed_customers_leave_the_online_store(target: tuple[Settings, str, Any]) -> None:
    settings, writer, client = target
    seed(settings)
    store = applied_store(settings)
    materialize(store=store, end=AT.to_pydatetime(), writer=writer)  # type: ignore[arg-type]
    known = assert_online_equals_offline(store, AT)
    assert online_customers(settings, client) == known
    layout = service_layout(store=store, feature_service="churn_v1")
    rows = fetch_online(store=store, layout=layout, customer_ids=IDS, now=AT.to_pydatetime())
    before = {r.customer_id: r.status for r in rows}
    present = [i for i in IDS if before[i] == "ok"]
    assert len(present) >= 6
    gone, no_account = present[:3], present[3:6]

    drop_customers(settings, everywhere=gone, from_view={"account": no_account})
    result = materialize(store=store, end=AT.to_pydatetime(), writer=writer)  # type: ignore[arg-type]
    assert result.removed["account"] == 6 and result.removed["profile"] == 3
    rows = fetch_online(store=store, layout=layout, customer_ids=IDS, now=AT.to_pydatetime())
    after = {r.customer_id: r for r in rows}
    assert all(after[i].status == "unknown_customer" for i in gone)
    for i in no_account:
        assert after[i].status == "missing_features" and after[i].event_timestamps["account"] is None
    known_after = assert_online_equals_offline(store, AT)
    assert known_after == known - 3
    assert online_customers(settings, client) == known_after

    # An earlier end after a later one: the online store is the answer at the earlier end
    # (values newer than it are replaced, customers that only exist later are removed).
    materialize(store=store, end=EARLIER.to_pydatetime(), writer=writer)  # type: ignore[arg-type]
    assert online_customers(settings, client) == assert_online_equals_offline(store, EARLIER)
    # ... and back again.
    materialize(store=store, end=AT.to_pydatetime(), writer=writer)  # type: ignore[arg-type]
    assert online_customers(settings, client) == assert_online_equals_offline(store, AT) == known_after


def test_pruning_touches_only_this_project(
    settings: Settings, redis_url: str, redis_projects: set[str]
) -> None:
    """Another project whose name ends with this one's matches Feast's scan pattern: its keys
    (and the same customers' keys) survive this project's deletions."""
    mine = settings.model_copy(update={"redis_url": redis_url, "redis_timeout_ms": 5000})
    other = mine.model_copy(update={"project": "x" + mine.project, "home": mine.home.parent / "other"})
    redis_projects.add(other.project)
    rng = np.random.default_rng(3)
    for s in (mine, other):
        for view in VIEWS:
            times = pd.DatetimeIndex([AT - pd.Timedelta(days=1)] * len(IDS))
            frame = random_view_rows(rng=rng, view=view, ids=IDS, times=times)
            write_view(settings=s, view=view, frame=frame)
    other_store = applied_store(other)
    materialize(store=other_store, end=AT.to_pydatetime())
    client = redis.Redis.from_url(redis_url)
    other_keys = {k: client.hgetall(k) for k in project_keys(client=client, project=other.project)}
    assert len(other_keys) == len(IDS)

    store = applied_store(mine)
    materialize(store=store, end=AT.to_pydatetime())
    drop_customers(mine, everywhere=IDS[:100], from_view={})
    result = materialize(store=store, end=AT.to_pydatetime())
    assert result.removed == {"profile": 100, "account": 100, "services": 100}
    # project_keys of `mine` also matches the other project's keys (suffix): count exactly.
    assert len(project_keys(client=client, project=mine.project)) == len(IDS) - 100 + len(IDS)
    assert {k: client.hgetall(k) for k in project_keys(client=client, project=other.project)} == other_keys
