"""`/readyz` is ready only when every view of the served FeatureService is completely
materialized (issue 17.7): after the online store is emptied (a Redis restarted without its
data: here this test's own keys deleted) and a materialization dies half way, readiness names
the view that is not finished; a complete run makes it ready again.

A real `bentoml serve` subprocess on a private redis-server (tests.support.serving_env).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from tests.support.serving_env import PrivateService, load_online_store, private_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateService]:
    with private_service(work=tmp_path_factory.mktemp("readiness"), n_customers=100, seed=11, c=0.5) as stack:
        yield stack


def _wait_ready(
    served: PrivateService, *, status: int, reason: str = "", timeout_s: float = 20
) -> httpx.Response:
    """Poll /readyz until it answers ``status`` with ``reason`` in its reason (or fail naming it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{served.service.url}/readyz", timeout=5)
        if response.status_code == status and reason in response.json().get("reason", ""):
            return response
        assert time.monotonic() < deadline, f"/readyz never answered {status} {reason!r}: {response.text}"
        time.sleep(0.2)


def test_readiness_needs_every_view_completely_materialized(served: PrivateService) -> None:
    import redis

    from churnops.contracts.materialization import redis_marker_key
    from churnops.features.fastpath.markers import read_markers
    from churnops.features.materialize import materialize
    from churnops.wiring import feature_store
    from tests.support.redis_keys import delete_project_keys

    settings = served.settings
    store = feature_store(settings)
    views = sorted(v.name for v in store.list_feature_views())
    _wait_ready(served, status=200)
    client = redis.Redis.from_url(settings.redis_url or "")
    try:
        assert all(
            client.hget(redis_marker_key(project=settings.project, view=v), "finished_run") for v in views
        )
        # The store emptied (only this test's keys, markers included): not ready, naming a view.
        assert delete_project_keys(client=client, project=settings.project) > len(views)
    finally:
        client.close()
    emptied = _wait_ready(served, status=503, reason="never materialized")
    assert any(f"view {v} " in emptied.json()["reason"] for v in views), emptied.text

    # A materialization that dies after its first view: that view is complete, the others not.
    class Killed(Exception):
        pass

    loaded: list[str] = []

    def die_after_first(view: str) -> None:
        loaded.append(view)
        raise Killed(view)

    with pytest.raises(Killed):
        materialize(store=store, end=served.env.as_of + timedelta(minutes=1), on_view=die_after_first)
    markers = read_markers(store=store, views=views)
    unfinished = [v for v in views if v not in loaded]
    assert markers[loaded[0]].complete and unfinished
    assert all(markers[v].in_progress and not markers[v].complete for v in unfinished)
    half = _wait_ready(served, status=503, reason="is not completely materialized")
    reason = half.json()["reason"]
    assert any(f"view {v} is not completely" in reason for v in unfinished), reason
    assert markers[unfinished[0]].started_run in reason  # the run that did not finish
    # Customers are back online for the finished view, so the old "store not empty" check passes:
    # only the markers tell the store is incomplete.

    load_online_store(store=store, as_of=served.env.as_of)  # a complete run
    _wait_ready(served, status=200)
    ids = served.env.customer_ids[:3]
    answer = httpx.post(f"{served.service.url}/predict", json={"customer_ids": ids}, timeout=10)
    assert answer.status_code == 200 and {p["status"] for p in answer.json()["predictions"]} == {"ok"}
