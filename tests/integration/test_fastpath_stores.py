"""The Feast fast path (``churnops.features.fastpath``) checked the same way on every store
combination: online SQLite / Redis / Redis Cluster x offline DuckDB / Spark.

Checks (one test function each, parametrised over the combinations):

- ``sdk_reads_offline``: after ``materialize`` (writer ``auto``), Feast's own
  ``get_online_features`` returns the offline point-in-time answer at the end, value for value,
  and calls the values stale once the TTL has passed.
- ``direct_reader``: serving's direct reader returns exactly what Feast's reader returns
  (values, statuses, event times), its self-check agrees, and it stays on the direct path.
- ``markers``: every view holds a finished completion marker of the run; a run killed after its
  first view leaves the others started-but-unfinished, the earlier complete run still counting.
- ``pruner``: a re-run removes exactly the customers that left the sources (and the values newer
  than an earlier end), or, where the store cannot be pruned, keeps them and says so.
- ``direct_writer``: the direct writer writes Feast's bytes (field order, values, key TTL),
  keeps Feast's timestamp dedup, and any order of runs leaves the answer at the last end;
  ``direct_writer_refused``: where it cannot write, ``writer="direct"`` is refused.

A combination a check does not apply to is left out of its parametrisation (never skipped), the
reason recorded in ``NOT_APPLICABLE`` (``test_the_matrix_is_complete`` holds every check to all six
combinations). A missing service or tool (Redis, redis-server for the cluster, Java for Spark)
skips on a developer's machine and fails under ``CI=true`` (``tests/conftest.py``).

Read-only checks share one materialized store per combination (module scope, its own Feast
project and home); checks that rewrite sources or the store build their own. Spark cases are
``slow`` (Feast's Spark job per view, in the run's one ``local[2]`` session).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from churnops.contracts.columns import EVENT_TS, JOIN_KEY, VIEWS, feature_names
from churnops.contracts.materialization import completion_problem
from churnops.contracts.online import OnlineRow
from churnops.features.fastpath.markers import read_markers
from churnops.features.fastpath.pruner import PruneUnsupported, plan_prune
from churnops.features.fastpath.reader import RedisReader, first_difference
from churnops.features.fastpath.writer import DirectWriterUnsupported
from churnops.features.materialize import MaterializeResult, materialize
from churnops.features.online import fetch_online, service_layout
from churnops.features.training_set import build_training_set
from churnops.settings import Settings
from tests.support.feast import applied_store, seed_random_histories, write_view
from tests.support.redis_keys import delete_project_keys, project_keys

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-01-01", tz="UTC")
AT = pd.Timestamp("2024-09-01", tz="UTC")
EARLIER = AT - pd.Timedelta(days=60)
CUSTOMERS = 120

ONLINE = ("sqlite", "redis", "redis_cluster")
OFFLINE = ("duckdb", "spark")
COMBOS = [(online, offline) for online in ONLINE for offline in OFFLINE]
CHECKS = ("sdk_reads_offline", "direct_reader", "markers", "pruner", "direct_writer", "direct_writer_refused")

_NO_REDIS = "the direct reader reads Feast's Redis hashes; a SQLite store is read through Feast"
_CLUSTER_WRITE = (
    "the direct writer's multi-key Lua batches need one Redis node (Feast's cluster client writes)"
)
_SPARK_WRITE = "the direct writer reads parquet with DuckDB; on Spark, Feast's Spark job reads the sources"
_NO_REDIS_WRITE = "the direct writer writes Feast's Redis hashes; SQLite is written by Feast"
NOT_APPLICABLE: dict[str, dict[tuple[str, str], str]] = {
    "direct_reader": {("sqlite", offline): _NO_REDIS for offline in OFFLINE},
    "direct_writer": {
        ("sqlite", "duckdb"): _NO_REDIS_WRITE,
        ("sqlite", "spark"): _NO_REDIS_WRITE,
        ("redis_cluster", "duckdb"): _CLUSTER_WRITE,
        ("redis_cluster", "spark"): _CLUSTER_WRITE,
        ("redis", "spark"): _SPARK_WRITE,
    },
    "direct_writer_refused": {("redis", "duckdb"): "the direct writer writes this store (direct_writer)"},
}


def combos(check: str) -> list[Any]:
    """The combinations ``check`` applies to, as params ``<online>-<offline>`` (Spark: slow)."""
    skipped = NOT_APPLICABLE.get(check, {})
    return [
        pytest.param(c, id=f"{c[0]}-{c[1]}", marks=[pytest.mark.slow] if c[1] == "spark" else [])
        for c in COMBOS
        if c not in skipped
    ]


def test_the_matrix_is_complete() -> None:
    """Every check runs on, or names why not, each of the six combinations (none silently dropped)."""
    for check in CHECKS:
        ran = {p.values[0] for p in combos(check)}
        left_out = NOT_APPLICABLE.get(check, {})
        assert ran | set(left_out) == set(COMBOS) and not ran & set(left_out), check
        assert all(reason.strip() for reason in left_out.values()), check
    assert set(NOT_APPLICABLE) <= set(CHECKS)


# -- stores --------------------------------------------------------------------------------


def store_url(request: pytest.FixtureRequest, online: str) -> str | None:
    """The online store's URL (None: SQLite), through the fixtures that skip or fail (CI) when the
    service is missing."""
    if online == "redis":
        return str(request.getfixturevalue("redis_url"))
    if online == "redis_cluster":
        return str(request.getfixturevalue("redis_cluster"))
    return None


def combo_settings(
    request: pytest.FixtureRequest, combo: tuple[str, str], home: Path, project: str
) -> Settings:
    online, offline = combo
    if offline == "spark":
        request.getfixturevalue("spark")
    url = store_url(request, online)
    return Settings(
        home=home,
        project=project,
        redis_url=url,
        redis_type="redis_cluster" if online == "redis_cluster" else "redis",
        redis_timeout_ms=5000,
        offline_store=offline,  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )


def seed(settings: Settings, customers: int = CUSTOMERS) -> list[str]:
    """Random histories (0..8 rows per customer and view over 300 days): some customers lack a
    view, some have no row at all."""
    ids = [f"{i:04d}-FAST" for i in range(customers)]
    seed_random_histories(
        settings=settings, ids=ids, seed=11, start=T0, span=pd.Timedelta(days=300), max_rows=9
    )
    return ids


def seed_edges(settings: Settings, customers: int = 120) -> list[str]:
    """Random histories plus the edge cases of the window and the dedup order: rows exactly at the
    window bounds and 1 us outside them, ties on event time broken by ``created``, and nulls in a
    string, an int and a float column."""
    import numpy as np

    from churnops.contracts.columns import CREATED_TS
    from tests.support.feast import random_view_rows

    rng = np.random.default_rng(7)
    ids = [f"{i:04d}-EDGE" for i in range(customers)]
    us = pd.Timedelta(microseconds=1)
    for view in VIEWS:
        row_ids = np.repeat(ids, rng.integers(0, 8, customers)).tolist()
        times = T0 + pd.to_timedelta(rng.integers(0, 300 * 24 * 60, len(row_ids)), unit="min")
        frame = random_view_rows(rng=rng, view=view, ids=row_ids, times=pd.DatetimeIndex(times))
        start = AT - pd.Timedelta(days=400 if view == "profile" else 45)
        edge_times = [AT, AT + us, start, start - us, AT - pd.Timedelta(days=3), AT - pd.Timedelta(days=3)]
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
    edge_ids = [f"{v}-{e}" for v in VIEWS for e in ("at", "after", "start", "before")]
    return [*ids, *edge_ids, "tie", "NOBODY"]


def redis_client(settings: Settings) -> Any:
    import redis
    import redis.cluster

    assert settings.redis_url is not None
    if settings.redis_type == "redis_cluster":  # redis://host:port,host:port,...
        hosts = settings.redis_url.split("://", 1)[1].split(",")
        nodes = [redis.cluster.ClusterNode(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts]
        return redis.cluster.RedisCluster(startup_nodes=nodes)
    return redis.Redis.from_url(settings.redis_url)


def forget(settings: Settings) -> None:
    """Delete this project's keys (Feast's and the markers) and nothing else."""
    if settings.redis_url is None:
        return
    client = redis_client(settings)
    try:
        delete_project_keys(client=client, project=settings.project)
    finally:
        client.close()


@dataclass(frozen=True)
class Materialized:
    settings: Settings
    store: Any
    ids: list[str]
    result: MaterializeResult
    logged: tuple[str, ...]  # the materializer's log lines (why a direct path was not used)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        self._into.append(record.getMessage())


class SharedStores:
    """One seeded, materialized store per combination, built on first use, for read-only checks."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._built: dict[tuple[str, str], Materialized] = {}

    def get(self, request: pytest.FixtureRequest, combo: tuple[str, str]) -> Materialized:
        if combo not in self._built:
            project = f"t{uuid.uuid4().hex}"
            settings = combo_settings(request, combo, self._root / "-".join(combo), project)
            ids = seed(settings)
            store = applied_store(settings)
            logged: list[str] = []
            handler = _Collect(logged)
            log = logging.getLogger("churnops.features.materialize")
            log.addHandler(handler)
            try:
                result = materialize(store=store, end=AT.to_pydatetime(), run_id="complete-run")
            finally:
                log.removeHandler(handler)
            self._built[combo] = Materialized(
                settings=settings, store=store, ids=ids, result=result, logged=tuple(logged)
            )
        return self._built[combo]

    def close(self) -> None:
        for built in self._built.values():
            forget(built.settings)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStores]:
    stores = SharedStores(tmp_path_factory.mktemp("fastpath-stores"))
    try:
        yield stores
    finally:
        stores.close()


@pytest.fixture
def fresh() -> Iterator[list[Settings]]:
    """Settings built by a test for a store of its own; their Redis keys go at teardown."""
    made: list[Settings] = []
    yield made
    for settings in made:
        forget(settings)


def own_store(
    request: pytest.FixtureRequest,
    combo: tuple[str, str],
    tmp_path: Path,
    fresh: list[Settings],
    edges: bool = False,
) -> tuple[Settings, Any, list[str]]:
    settings = combo_settings(request, combo, tmp_path / "home", f"t{uuid.uuid4().hex}")
    fresh.append(settings)
    ids = seed_edges(settings) if edges else seed(settings)
    return settings, applied_store(settings), ids


def offline_answer(store: Any, ids: list[str], at: pd.Timestamp) -> pd.DataFrame:
    return build_training_set(store=store, entity_df=pd.DataFrame({JOIN_KEY: ids, EVENT_TS: [at] * len(ids)}))


def assert_online_equals_offline(store: Any, ids: list[str], at: pd.Timestamp) -> list[OnlineRow]:
    """Feast's get_online_features (via fetch_online) at ``at`` equals the offline answer at ``at``."""
    offline = offline_answer(store, ids, at)
    layout = service_layout(store=store, feature_service="churn_v1")
    online = fetch_online(store=store, layout=layout, customer_ids=ids, now=at.to_pydatetime())
    assert [r.customer_id for r in online] == ids
    for row, (_, want) in zip(online, offline.iterrows(), strict=True):
        for name in feature_names():
            expected = None if pd.isna(want[name]) else want[name]
            got = row.features[name]
            if isinstance(expected, float) or isinstance(got, float):
                assert got == pytest.approx(expected), (row.customer_id, name)
            else:
                assert got == expected, (row.customer_id, name, got, expected)
        assert (row.status == "unknown_customer") == all(pd.isna(want[n]) for n in feature_names())
        assert row.stale_views == ()  # materialized with the TTL window: nothing stale at its end
    return online


def expected_writer(combo: tuple[str, str]) -> str:
    return "direct" if combo == ("redis", "duckdb") else "feast"


def prunes(combo: tuple[str, str]) -> bool:
    """The pruner reads the sources with DuckDB and deletes on SQLite and plain Redis only."""
    return combo[0] in ("sqlite", "redis") and combo[1] == "duckdb"


# -- checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("combo", combos("sdk_reads_offline"))
def test_sdk_reads_offline(
    request: pytest.FixtureRequest, shared: SharedStores, combo: tuple[str, str]
) -> None:
    built = shared.get(request, combo)
    assert set(built.result.writers.values()) == {expected_writer(combo)}
    # Auto on Redis says once why the direct writer is not used (a cluster, or a Spark offline store).
    reasons = {
        ("redis_cluster", "duckdb"): "supports plain Redis, not redis_cluster",
        ("redis", "spark"): "spark",
    }
    said = [line for line in built.logged if "direct Redis writer not used" in line]
    if combo in reasons:
        assert len(said) == 1 and reasons[combo] in said[0], said
    elif combo[0] == "redis":
        assert said == []
    sample = [*built.ids[::2], "NOBODY-0000"]
    online = assert_online_equals_offline(built.store, sample, AT)
    statuses = [r.status for r in online]
    assert statuses.count("ok") >= 5 and statuses.count("missing_features") >= 5  # both paths seen
    assert online[-1].status == "unknown_customer"
    # Feast returns an old value as present; fetch_online calls it stale past the TTL.
    layout = service_layout(store=built.store, feature_service="churn_v1")
    later = fetch_online(
        store=built.store,
        layout=layout,
        customer_ids=sample,
        now=(AT + pd.Timedelta(days=400)).to_pydatetime(),
    )
    known = [r for r in later if r.status != "unknown_customer"]
    assert known and all(r.status in ("stale_features", "missing_features") for r in known)
    assert any("account" in r.stale_views for r in known)


@pytest.mark.parametrize("combo", combos("direct_reader"))
def test_direct_reader(request: pytest.FixtureRequest, shared: SharedStores, combo: tuple[str, str]) -> None:
    built = shared.get(request, combo)
    store, settings = built.store, built.settings
    assert settings.redis_url is not None
    now = (AT + pd.Timedelta(days=30)).to_pydatetime()  # some account values are past their TTL
    layout = service_layout(store=store, feature_service="churn_v1")
    reader = RedisReader(
        redis_url=settings.redis_url, store=store, layout=layout, timeout_ms=5000, clock=lambda: now
    )
    assert reader.self_check() is None  # a sample of stored ids (every node of a cluster) + an unknown id
    reader.warm_up()
    assert reader.active == "redis"
    ids = [*built.ids, "NOBODY-0000"]

    async def read() -> list[OnlineRow]:
        try:
            return [*await reader.fetch(ids), *await reader.fetch(ids[:1])]  # a batch, and a single id
        finally:
            await reader.aclose()

    direct = asyncio.run(read())
    feast = fetch_online(store=store, layout=layout, customer_ids=[*ids, ids[0]], now=now)
    assert first_difference(direct=direct, feast=feast) is None
    assert [(r.customer_id, r.features, r.event_timestamps) for r in direct] == [
        (r.customer_id, r.features, r.event_timestamps) for r in feast
    ]
    assert {"ok", "missing_features", "stale_features", "unknown_customer"} <= {r.status for r in direct}


@pytest.mark.parametrize("combo", combos("markers"))
def test_markers(request: pytest.FixtureRequest, shared: SharedStores, combo: tuple[str, str]) -> None:
    built = shared.get(request, combo)
    store = built.store
    views = list(VIEWS)
    markers = read_markers(store=store, views=views)
    assert set(markers) == set(views)
    assert {m.finished_run for m in markers.values()} == {"complete-run"}
    assert all(m.complete and m.finished_end == AT.to_pydatetime() for m in markers.values())
    # Rows are counted where the pruner counted the window, else unknown (None).
    rows = {m.finished_rows for m in markers.values()}
    assert (None not in rows) if prunes(combo) else rows == {None}
    assert completion_problem(views=views, markers=markers) is None

    class Killed(Exception):
        pass

    done: list[str] = []

    def die_after_first(view: str) -> None:
        done.append(view)
        raise Killed(view)

    # A later run killed after its first view (same end: the values stay the same).
    with pytest.raises(Killed):
        materialize(store=store, end=AT.to_pydatetime(), run_id="killed-run", on_view=die_after_first)
    markers = read_markers(store=store, views=views)
    [first] = done
    assert markers[first].finished_run == "killed-run" and markers[first].complete
    for view in (v for v in views if v != first):
        assert markers[view].in_progress and markers[view].started_run == "killed-run"
        assert markers[view].finished_run == "complete-run"  # the earlier complete run still counts
    assert completion_problem(views=views, markers=markers) is None


@pytest.mark.parametrize("combo", combos("pruner"))
def test_pruner(
    request: pytest.FixtureRequest, tmp_path: Path, fresh: list[Settings], combo: tuple[str, str]
) -> None:
    if combo[1] == "spark":
        # Spark sources are SparkSources: the pruner, which reads parquet with DuckDB, says so
        # (materialize kept the values and logged why; `removed` is None). Read-only: the shared store.
        built = request.getfixturevalue("shared").get(request, combo)
        assert built.result.removed == dict.fromkeys(VIEWS)
        assert sum("online values not in the window are kept" in line for line in built.logged) == len(VIEWS)
        view = built.store.get_feature_view("account")
        with pytest.raises(PruneUnsupported, match="not a parquet FileSource"):
            plan_prune(
                store=built.store, view=view, start=AT.to_pydatetime() - view.ttl, end=AT.to_pydatetime()
            )
        return
    settings, store, ids = own_store(request, combo, tmp_path, fresh)
    first = materialize(store=store, end=AT.to_pydatetime())
    layout = service_layout(store=store, feature_service="churn_v1")
    before = {r.customer_id: r for r in fetch_online(store=store, layout=layout, customer_ids=ids)}
    holders = {view: {c for c, r in before.items() if r.event_timestamps.get(view)} for view in VIEWS}
    gone = set(sorted(holders["account"])[:10])
    assert len(gone) == 10
    # The gone customers leave every source (a re-ingest without them).
    for view in VIEWS:
        frame = pd.read_parquet(settings.source_dir(view))
        write_view(settings=settings, view=view, frame=frame[~frame[JOIN_KEY].isin(gone)], parts=2)
    again = materialize(store=store, end=AT.to_pydatetime())
    after = {r.customer_id: r for r in fetch_online(store=store, layout=layout, customer_ids=ids)}
    if prunes(combo):
        assert again.removed == {view: len(holders[view] & gone) for view in VIEWS}
        assert all(after[c].status == "unknown_customer" for c in gone)
        assert all(after[c] == before[c] for c in ids if c not in gone)  # nobody else touched
        # An earlier end: values newer than it go, and the store holds the answer at that end.
        earlier = materialize(store=store, end=EARLIER.to_pydatetime())
        assert sum(n or 0 for n in earlier.removed.values()) > 0
        assert_online_equals_offline(store, [c for c in ids if c not in gone], EARLIER)
    else:
        # A cluster is not pruned (no cheap keyspace scan across nodes): values are kept, said so.
        assert first.removed == again.removed == dict.fromkeys(VIEWS)
        assert all(after[c] == before[c] for c in ids)


@pytest.mark.parametrize("combo", combos("direct_writer"))
def test_direct_writer(
    request: pytest.FixtureRequest, tmp_path: Path, fresh: list[Settings], combo: tuple[str, str]
) -> None:
    settings, store, ids = own_store(request, combo, tmp_path, fresh, edges=True)
    client = redis_client(settings)

    def dump() -> dict[bytes, tuple[list[bytes], dict[bytes, bytes], int]]:
        """Every hash of the project: field order (HKEYS), HGETALL and TTL."""
        keys = project_keys(client=client, project=settings.project)
        return {key: (client.hkeys(key), client.hgetall(key), client.ttl(key)) for key in keys}

    def values(raw: dict[bytes, Any]) -> dict[bytes, Any]:
        return {key: (fields, ttl) for key, (_, fields, ttl) in raw.items()}  # without the field order

    sequences = {
        "at": [AT],
        "earlier": [EARLIER],
        "newer_then_older": [AT, EARLIER],
        "older_then_newer": [EARLIER, AT],
    }
    states: dict[str, Any] = {}
    try:
        for writer in ("feast", "direct"):
            for name, ends in sequences.items():
                forget(settings)
                for end in ends:
                    result = materialize(store=store, end=end.to_pydatetime(), writer=writer)  # type: ignore[arg-type]
                    assert set(result.writers.values()) == {writer}
                states[f"{writer}/{name}"] = dump()
        for name in sequences:
            feast_raw, direct_raw = states[f"feast/{name}"], states[f"direct/{name}"]
            assert len(direct_raw) > len(ids) // 2
            assert direct_raw == feast_raw, name  # keys, field order, bytes and TTL
        # Any order of runs leaves the answer at the last end (the pruner and Feast's dedup).
        assert values(states["direct/newer_then_older"]) == values(states["direct/earlier"])
        assert values(states["direct/older_then_newer"]) == values(states["direct/at"])
        assert states["direct/at"].keys() != states["direct/earlier"].keys()  # the windows differ
        # Window edges and the created tie-break made it through, read back by Feast and by
        # serving's direct reader alike (nulls included).
        layout = service_layout(store=store, feature_service="churn_v1")
        got = fetch_online(store=store, layout=layout, customer_ids=ids, now=AT.to_pydatetime())
        by_id = {r.customer_id: r for r in got}
        for view in ("account", "services"):
            assert by_id[f"{view}-at"].event_timestamps[view] is not None
            assert by_id[f"{view}-start"].event_timestamps[view] is not None
            assert by_id[f"{view}-after"].status == "unknown_customer"
            assert by_id[f"{view}-before"].status == "unknown_customer"
        assert by_id["tie"].event_timestamps["account"] == (AT - pd.Timedelta(days=3)).to_pydatetime()
        reader = RedisReader(
            redis_url=str(settings.redis_url),
            store=store,
            layout=layout,
            timeout_ms=5000,
            clock=AT.to_pydatetime,
        )

        async def read() -> list[OnlineRow]:
            try:
                return await reader.fetch(ids)
            finally:
                await reader.aclose()

        assert first_difference(direct=asyncio.run(read()), feast=got) is None
        # The registry records the window as Feast's materialize does.
        account = store.registry.get_feature_view("account", store.project, allow_cache=False)
        assert account.materialization_intervals[-1][1] == AT.to_pydatetime()
        # With Feast's key_ttl_seconds set, both writers expire the same keys the same way.
        store.config.online_store.key_ttl_seconds = 86_400
        dumps = []
        for writer in ("feast", "direct"):
            forget(settings)
            materialize(store=store, end=AT.to_pydatetime(), writer=writer)  # type: ignore[arg-type]
            dumps.append(dump())
        feast_raw, direct_raw = dumps
        assert feast_raw and direct_raw.keys() == feast_raw.keys()
        for key, (order, fields, ttl) in feast_raw.items():
            assert direct_raw[key][:2] == (order, fields)
            assert 86_300 < ttl <= 86_400 and 86_300 < direct_raw[key][2] <= 86_400
    finally:
        client.close()


@pytest.mark.parametrize("combo", combos("direct_writer_refused"))
def test_direct_writer_refused(
    request: pytest.FixtureRequest, shared: SharedStores, combo: tuple[str, str]
) -> None:
    built = shared.get(request, combo)
    why = {
        "sqlite": "Redis online store",
        "redis_cluster": "not redis_cluster",
        "redis": "offline store is spark",
    }
    with pytest.raises(DirectWriterUnsupported, match=why[combo[0]]):
        materialize(store=built.store, end=AT.to_pydatetime(), writer="direct")


def test_importing_the_reader_does_not_import_feast() -> None:
    """Serving starts with the reader module; ``import feast`` would cost it ~15 s."""
    code = (
        "import sys, churnops.features.fastpath.reader, churnops.features.fastpath; "
        "print(sorted(m for m in sys.modules if m == 'feast' or m.startswith('feast.')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
    # Not vacuous: the same probe sees Feast when a module does import it.
    probe = code.replace("churnops.features.fastpath.reader", "churnops.features.online")
    seen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert "'feast'" in seen.stdout, seen.stderr


def test_scan_pattern_matches_only_its_projects_keys(redis_url: str) -> None:
    """Glob characters in a project name are matched literally (the pruner's and the self-check's
    scans); each project's keys are deleted at the end."""
    import redis
    from feast import Field
    from feast.types import String

    from churnops.features.fastpath.codec import EntityKeyCodec, entity_key_codec

    client = redis.Redis.from_url(redis_url)
    token = uuid.uuid4().hex[:8]

    def codec(project: str, join_key: str = "customer_id") -> EntityKeyCodec:
        config = type("Config", (), {"project": project, "entity_key_serialization_version": 3})()
        return entity_key_codec(config=config, join_key=Field(name=join_key, dtype=String))

    names = [f"p[{token}]*", f"p[{token}]x", f"p{token}"]
    mine, others = codec(names[0]), [codec(names[1]), codec(names[2]), codec(names[0], join_key="account_id")]
    try:
        for c in (mine, *others):
            for key in c.encode(["a", "b*", "c"]):
                client.hset(key, "f", b"1")
        found = sorted(mine.decode(k) for k in client.scan_iter(match=mine.scan_pattern(), count=1000))
        assert found == ["a", "b*", "c"]
    finally:
        for c in (mine, *others):
            client.delete(*c.encode(["a", "b*", "c"]))
        client.close()
