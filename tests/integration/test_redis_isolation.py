"""Two test runs sharing one Redis db stay apart: each materializes under its own Feast project,
and cleaning one up (what the ``redis_url`` fixture does at teardown) leaves the other intact."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnops.contracts.columns import VIEWS
from churnops.contracts.materialization import redis_marker_pattern
from churnops.features.materialize import materialize
from churnops.features.online import fetch_online, service_layout
from churnops.settings import Settings
from tests.support.feast import applied_store, random_view_rows, write_view
from tests.support.redis_keys import delete_project_keys, project_keys, project_pattern

pytestmark = pytest.mark.integration

END = pd.Timestamp("2024-06-30", tz="UTC")
IDS = [f"{i:04d}-ISOL" for i in range(30)]  # the same customers in both projects


def _seed(settings: Settings) -> None:
    rng = np.random.default_rng(3)
    times = pd.DatetimeIndex([END - pd.Timedelta(days=1)] * len(IDS))
    for view in VIEWS:
        write_view(
            settings=settings, view=view, frame=random_view_rows(rng=rng, view=view, ids=IDS, times=times)
        )


def test_two_projects_in_one_db_clean_up_apart(
    tmp_path: Path, redis_url: str, redis_projects: set[str]
) -> None:
    import redis

    first, second = (f"t{uuid.uuid4().hex}" for _ in range(2))
    redis_projects.update({first, second})  # the fixture still removes both if an assert fails
    stores = {}
    for project in (first, second):
        settings = Settings(
            home=tmp_path / project,
            project=project,
            redis_url=redis_url,
            redis_timeout_ms=5000,
            _env_file=None,
        )
        _seed(settings)
        stores[project] = applied_store(settings)
        materialize(store=stores[project], end=END.to_pydatetime())

    client = redis.Redis.from_url(redis_url)
    # Someone else's key in the same db (another suite, a developer): never touched.
    bystander = f"bystander-{uuid.uuid4().hex}"
    client.set(bystander, b"keep")
    try:
        mine, theirs = (set(project_keys(client=client, project=p)) for p in (first, second))
        assert len(mine) == len(theirs) == len(IDS)
        assert not mine & theirs  # same customers, distinct keys: the project ends each key
        theirs_before = {key: client.hgetall(key) for key in theirs}

        # the customers' hashes and one completion marker per view
        assert delete_project_keys(client=client, project=first) == len(IDS) + len(VIEWS)
        assert not list(client.scan_iter(match=redis_marker_pattern(project=first)))
        assert len(list(client.scan_iter(match=redis_marker_pattern(project=second)))) == len(VIEWS)

        assert project_keys(client=client, project=first) == []
        assert {key: client.hgetall(key) for key in theirs} == theirs_before
        assert client.get(bystander) == b"keep"
        layout = service_layout(store=stores[second], feature_service="churn_v1")
        now = END.to_pydatetime()
        survivors = fetch_online(store=stores[second], layout=layout, customer_ids=IDS, now=now)
        assert {row.status for row in survivors} == {"ok"}
        first_layout = service_layout(store=stores[first], feature_service="churn_v1")
        gone = fetch_online(store=stores[first], layout=first_layout, customer_ids=IDS, now=now)
        assert {row.status for row in gone} == {"unknown_customer"}
    finally:
        client.delete(bystander)
        client.close()


def test_project_pattern_escapes_glob_characters() -> None:
    assert project_pattern("t0af") == b"*t0af"
    assert project_pattern("a*b?[c]") == rb"*a\*b\?\[c\]"
    with pytest.raises(ValueError, match=r"Settings\.project"):
        project_pattern("")
