"""Which Feast online stores the fast path can address, and the Redis clients it reaches them with.

Clients are built from Feast's own parse of the store's connection string (same host, db,
password, TLS and timeouts as Feast's own client), never from a second configuration.
"""

from __future__ import annotations

from typing import Any

from churnops.features.fastpath import feast_private


def direct_store_problem(*, config: Any, cluster: bool = False) -> str | None:
    """Why a direct path cannot address this Feast store's online store (None: it can).

    ``cluster=True``: the caller also handles Redis Cluster (per-key commands routed by slot,
    as serving's reader does); the writer's multi-key Lua batches need one node.
    """
    online = config.online_store
    kind = feast_private.redis_store_kind(online)
    if kind is None:
        return f"the direct path needs Feast's Redis online store, not {getattr(online, 'type', online)!r}"
    allowed = ("redis", "redis_cluster") if cluster else ("redis",)
    if kind not in allowed:
        return f"the direct path supports plain Redis, not {kind}"
    return None


def is_cluster(*, config: Any) -> bool:
    """The online store is Feast's Redis store in ``redis_cluster`` mode."""
    return getattr(config.online_store, "redis_type", None) == "redis_cluster"


def cluster_client_arguments(*, config: Any) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The startup nodes and client keywords Feast builds its RedisCluster from (its own parser
    of the connection string: same password, timeouts, TLS); a cluster has no ``db``."""
    nodes, kwargs = feast_private.redis_connection(config.online_store.connection_string)
    kwargs.pop("db", None)
    return [(str(n["host"]), int(n["port"])) for n in nodes], kwargs


def redis_client(*, config: Any) -> Any:
    """A synchronous client of the store's Redis: a ``RedisCluster`` in ``redis_cluster`` mode,
    else a client of the connection string's first node (as Feast's own plain-Redis client)."""
    import redis

    if is_cluster(config=config):
        import redis.cluster

        hosts, kwargs = cluster_client_arguments(config=config)
        return redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in hosts], **kwargs
        )
    nodes, kwargs = feast_private.redis_connection(config.online_store.connection_string)
    return redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **kwargs)


__all__ = ["cluster_client_arguments", "direct_store_problem", "is_cluster", "redis_client"]
