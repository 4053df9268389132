"""Serving's direct reader of Feast's Redis layout, and what serving needs of the fast path.

``RedisReader`` reads Feast's Redis layout directly (one HMGET per id; keys, fields and
decoding from ``codec`` and ``fields``, the codec the direct writer uses) on an asyncio client
with millisecond timeouts and no retries. Measured: Feast's read path costs ~40 ms for 100 ids
on this machine, this one a few ms. At warm-up it compares itself with ``fetch_online`` on a
sample and falls back to the reader its caller supplies (serving's Feast reader) on any
difference. On Redis Cluster (``redis_type: redis_cluster``) it sends one HMGET per id through
redis-py's cluster pipeline, which groups the keys by the node that holds their slot and asks
the nodes in parallel (a multi-key script would have to live in one slot).

It judges staleness against the view TTL (Feast does not enforce TTL online). A store that is
down or slower than the deadline raises ``FeaturesUnavailable``; the service answers 503.

Importing this module does not import Feast (``import feast`` costs ~15 s; serving starts with
this module): Feast is imported only when the self-check compares with Feast's reader
(``tests/integration/test_fastpath_stores.py`` checks this in a fresh interpreter). It is
serving's one door into the fast path: it also re-exports the codec's ``LayoutUnsupported``,
``feast_version_problem`` and the completion markers' reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from churnops.contracts.clock import wall_clock
from churnops.contracts.materialization import ViewMarker, completion_problem, redis_marker_key
from churnops.contracts.online import OnlineRow, RowStatus, classify
from churnops.features.fastpath.codec import LayoutUnsupported
from churnops.features.fastpath.feast_private import VERIFIED_FEAST_VERSION, feast_version_problem
from churnops.features.fastpath.fields import HashDecoder, service_fields
from churnops.features.fastpath.markers import MarkersUnsupported, read_markers
from churnops.features.fastpath.store_access import cluster_client_arguments, direct_store_problem, is_cluster

if TYPE_CHECKING:
    from churnops.features.online import ServiceLayout

logger = logging.getLogger(__name__)
_UNKNOWN_ID = "__churnops_self_check__"  # an id no store holds: the unknown-customer path
_SAMPLE_SCANS = 20  # SCAN calls at most while sampling ids for the self-check
# HMGET of the same fields for every key in KEYS; a missing field comes back as nil.
_HMGET_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, unpack(ARGV))
end
return out
"""


EMPTY_STORE = (
    "the online store holds no features for this service (emptied, or a Redis restarted without "
    "its data); run `churnops features materialize` again"
)


def redis_layout_location(url: str) -> str:
    """``host:port/db`` of a Redis URL, without credentials (for messages)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


class FeaturesUnavailable(RuntimeError):
    """The online store did not answer in time (down, slow, or refusing connections)."""


class OnlineReader(Protocol):
    async def fetch(self, customer_ids: Sequence[str]) -> list[OnlineRow]: ...

    async def problem(self) -> str | None:
        """Why the store cannot answer now (unreachable, emptied), or None (for /readyz)."""

    def warm_up(self) -> None:
        """Pay first-call costs (registry load, connections) before the reader takes traffic."""

    async def aclose(self) -> None: ...


class RedisReader:
    """Feast's Redis hash layout read directly, with the fast path's codec (``codec``, ``fields``).

    ``warm_up`` checks the reader against Feast's ``get_online_features`` on a sample of the
    stored ids (plus one unknown id); on any difference it logs a warning naming it and from
    then on serves through the reader ``fallback()`` builds (serving's Feast reader); without a
    ``fallback`` it raises ``LayoutUnsupported`` instead. Raises ``LayoutUnsupported`` at
    construction for a service it cannot address (several join keys, on-demand views).
    """

    def __init__(
        self,
        *,
        redis_url: str,
        store: Any,
        layout: ServiceLayout,
        timeout_ms: int,
        fallback: Callable[[], OnlineReader] | None = None,
        check_ids: int = 64,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self._clock = clock
        self._make_fallback = fallback
        problem = direct_store_problem(config=store.config, cluster=True)
        if problem:
            raise LayoutUnsupported(problem)
        self._cluster = is_cluster(config=store.config)
        self._url = redis_url
        self._store = store
        self._layout = layout
        self._ttl = layout.ttl
        self._timeout = timeout_ms / 1000
        self._check_ids = check_ids
        self._service = service_fields(store=store, service=layout.service)
        self._codec = self._service.keys
        self._fields = self._service.fields
        self._decoder = HashDecoder(self._service)
        self._client: Any = None
        self._script: Any = None
        self._fallback: OnlineReader | None = None
        # Keys known to be stored (sampled at warm-up): when an answer has unknown customers and
        # none of these exist either, the store was emptied (a Redis restarted without its data),
        # which is a store problem (503 features_unavailable), not a customer problem.
        self._sentinels: list[bytes] = []
        self._empty_checked = -1.0e9
        self._empty = False

    @property
    def active(self) -> str:
        """``redis`` (direct) or ``feast`` (the self-check found a difference)."""
        return "feast" if self._fallback is not None else "redis"

    def _redis(self) -> Any:
        if self._client is None and self._cluster:
            import redis.asyncio.cluster
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            nodes, kwargs = cluster_client_arguments(config=self._store.config)
            kwargs.update(socket_timeout=self._timeout, socket_connect_timeout=self._timeout)
            self._client = redis.asyncio.cluster.RedisCluster(
                startup_nodes=[redis.asyncio.cluster.ClusterNode(host, port) for host, port in nodes],
                # redis-py's asyncio cluster takes its asyncio Retry (types-redis says otherwise).
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
                **kwargs,
            )
        if self._client is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
            )
        return self._client

    def keys(self, customer_ids: Sequence[str]) -> list[bytes]:
        return self._codec.encode(customer_ids)

    async def fetch(self, customer_ids: Sequence[str]) -> list[OnlineRow]:
        import redis

        if self._fallback is not None:
            return await self._fallback.fetch(customer_ids)
        if not customer_ids:
            return []
        client = self._redis()
        try:
            async with asyncio.timeout(self._timeout * 2):
                if len(customer_ids) == 1:
                    values = [await client.hmget(self.keys(customer_ids)[0], self._fields)]
                elif self._cluster:
                    pipe = client.pipeline()
                    for key in self.keys(customer_ids):
                        pipe.hmget(key, self._fields)
                    values = await pipe.execute()
                else:
                    # One EVALSHA for the batch: packing N pipelined HMGETs of every field costs
                    # ~5 ms per 100 ids in redis-py; the script receives the field list once.
                    if self._script is None:
                        self._script = client.register_script(_HMGET_MANY)
                    values = await self._script(keys=self.keys(customer_ids), args=self._fields)
        except (TimeoutError, redis.RedisError, OSError) as error:
            # redis-py drops the failed connection itself and reconnects on next use; the pool
            # (and other requests' connections) stay, so one slow read cannot cascade.
            self._empty_checked = -1.0e9  # it may come back emptied: the next check must not reuse ours
            raise FeaturesUnavailable(f"online store unavailable: {type(error).__name__}") from error
        rows = self.decode(customer_ids, values, now=self._clock())
        if any(r.status == RowStatus.UNKNOWN_CUSTOMER for r in rows) and await self._emptied():
            raise FeaturesUnavailable(EMPTY_STORE)
        return rows

    async def _emptied(self) -> bool:
        """True when the store holds no row of this service (checked at most once a second)."""
        import time

        import redis

        if self._cluster:
            return False  # a cluster has no one keyspace to scan cheaply; not checked there
        now = time.monotonic()
        if now - self._empty_checked < 1.0:
            return self._empty
        client = self._redis()
        try:
            async with asyncio.timeout(self._timeout * 4):
                if self._sentinels and await client.exists(*self._sentinels):
                    empty = False
                else:
                    _, keys = await client.scan(cursor=0, match=self._codec.scan_pattern(), count=1000)
                    empty = not keys
                    if keys:
                        self._sentinels = list(keys[:8])
        except (TimeoutError, redis.RedisError, OSError) as error:
            raise FeaturesUnavailable(f"online store unavailable: {type(error).__name__}") from error
        self._empty, self._empty_checked = empty, now
        return empty

    async def problem(self) -> str | None:
        import redis

        if self._fallback is not None:
            return await self._fallback.problem()
        views = list(self._layout.ttl)
        project = self._store.config.project
        try:
            async with asyncio.timeout(self._timeout * 4):
                client = self._redis()
                await client.ping()
                # Every view of the service completely materialized (its finished marker present).
                found = [await client.hgetall(redis_marker_key(project=project, view=v)) for v in views]
        except (TimeoutError, redis.RedisError, OSError) as error:
            return f"online store unreachable at {redis_layout_location(self._url)} ({type(error).__name__})"
        try:
            markers = {
                v: ViewMarker.from_fields(view=v, fields=f) for v, f in zip(views, found, strict=True) if f
            }
        except ValueError as error:
            return f"a completion marker in the online store is unreadable ({error})"
        incomplete = completion_problem(views=views, markers=markers)
        if incomplete is not None:
            return incomplete
        try:
            if await self._emptied():
                return EMPTY_STORE
        except FeaturesUnavailable as error:
            return str(error)
        return None

    def decode(
        self, customer_ids: Sequence[str], values: Sequence[Sequence[bytes | None]], *, now: datetime
    ) -> list[OnlineRow]:
        decode = self._decoder.decode
        rows = []
        for cid, raw in zip(customer_ids, values, strict=True):
            row = decode(raw)
            rows.append(
                classify(
                    customer_id=cid,
                    features=row.features,
                    view_ts=row.view_ts,
                    missing=row.missing,
                    ttl=self._ttl,
                    now=now,
                )
            )
        return rows

    def self_check(self, *, customer_ids: Sequence[str] | None = None) -> str | None:
        """The first difference between this reader's rows and Feast's for the same ids (None: same).

        ``customer_ids`` default: up to ``check_ids`` ids found in Redis, plus one unknown id.
        Synchronous (its own short-lived client); raises when Redis cannot be reached.
        """
        import redis

        from churnops.features.online import fetch_online  # imports Feast: not at module import

        timeout = max(self._timeout * 5, 1.0)
        client: Any
        if self._cluster:
            import redis.cluster

            nodes, kwargs = cluster_client_arguments(config=self._store.config)
            kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout)
            client = redis.cluster.RedisCluster(
                startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in nodes], **kwargs
            )
        else:
            client = redis.Redis.from_url(self._url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            ids = list(customer_ids) if customer_ids is not None else [*self._sample(client), _UNKNOWN_ID]
            self._sentinels = self.keys([i for i in ids if i != _UNKNOWN_ID][:8])
            with client.pipeline(transaction=False) as pipe:
                for key in self.keys(ids):
                    pipe.hmget(key, self._fields)
                raw = pipe.execute()
        finally:
            client.close()
        now = self._clock()
        direct = self.decode(ids, raw, now=now)
        feast = fetch_online(store=self._store, layout=self._layout, customer_ids=ids, now=now)
        return first_difference(direct=direct, feast=feast)

    def _sample(self, client: Any) -> list[str]:
        if self._cluster:
            import itertools

            # redis-py's cluster scan_iter walks every primary in turn.
            keys = client.scan_iter(match=self._codec.scan_pattern(), count=1000)
            return [str(self._codec.decode(k)) for k in itertools.islice(keys, self._check_ids)]
        ids: list[str] = []
        cursor = 0
        for _ in range(_SAMPLE_SCANS):
            cursor, keys = client.scan(cursor=cursor, match=self._codec.scan_pattern(), count=1000)
            ids.extend(str(self._codec.decode(k)) for k in keys)
            if cursor == 0 or len(ids) >= self._check_ids:
                break
        return ids[: self._check_ids]

    def warm_up(self) -> None:
        """Check this reader against Feast; on a difference, serve through the fallback (and say why)."""
        problem = self.self_check()
        if problem is not None:
            if self._make_fallback is None:
                raise LayoutUnsupported(
                    f"direct Redis reader disagrees with Feast's get_online_features: {problem}"
                )
            logger.warning(
                "feature service %s: direct Redis reader disagrees with Feast's get_online_features (%s); "
                "using Feast's reader for it",
                self._layout.service.name,
                problem,
            )
            self._fallback = self._make_fallback()

    async def _reset(self) -> None:
        client, self._client, self._script = self._client, None, None
        if client is not None:
            # Best effort: the connection may already be broken.
            with contextlib.suppress(Exception):
                if self._cluster:
                    await client.aclose()  # every node's connections
                else:
                    await client.aclose(close_connection_pool=True)

    async def aclose(self) -> None:
        await self._reset()


def first_difference(*, direct: Sequence[OnlineRow], feast: Sequence[OnlineRow]) -> str | None:
    """Where two readers' rows for the same ids first differ, in words (None: identical)."""
    for mine, theirs in zip(direct, feast, strict=True):
        cid = mine.customer_id
        if mine.features.keys() != theirs.features.keys():
            return f"customer {cid}: features {sorted(mine.features)} vs {sorted(theirs.features)}"
        for name, value in mine.features.items():
            if value != theirs.features[name] or type(value) is not type(theirs.features[name]):
                return f"customer {cid}, feature {name}: direct {value!r}, Feast {theirs.features[name]!r}"
        for what in ("status", "event_timestamps", "stale_views"):
            a, b = getattr(mine, what), getattr(theirs, what)
            if a != b:
                return f"customer {cid}, {what}: direct {a!r}, Feast {b!r}"
        if sorted(mine.missing) != sorted(theirs.missing):
            return f"customer {cid}, missing: direct {sorted(mine.missing)}, Feast {sorted(theirs.missing)}"
    return None


__all__ = [
    "EMPTY_STORE",
    "VERIFIED_FEAST_VERSION",
    "FeaturesUnavailable",
    "LayoutUnsupported",
    "MarkersUnsupported",
    "OnlineReader",
    "RedisReader",
    "feast_version_problem",
    "first_difference",
    "read_markers",
    "redis_layout_location",
]
