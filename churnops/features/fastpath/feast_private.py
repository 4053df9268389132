"""Every Feast name the fast path uses that is not Feast's documented API, and nothing else.

The other fast-path modules reach these names only through this module (``tests/unit/
test_fastpath_feast_private.py`` refuses a Feast private or internal import anywhere else in
``churnops``, ``serving``, ``monitoring``, ``registry_ext`` and ``feature_repo``). Each function
imports its Feast name when called, so importing this module costs nothing (``import feast``
takes ~15 s; serving's reader must not pay it at import).

``PRIVATE_API`` lists them, with ``VERIFIED_FEAST_VERSION`` the release they were checked
against; the listed tests fail when a Feast upgrade changes one. On an upgrade: bump the pin,
run those tests, then change ``VERIFIED_FEAST_VERSION`` (until then ``auto`` keeps the direct
paths off and says why).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERIFIED_FEAST_VERSION = "0.67.0"


@dataclass(frozen=True)
class PrivateApi:
    """One Feast name outside its documented API: where it lives, what the fast path needs it
    for, and the tests that fail when Feast changes it."""

    name: str
    kind: str  # "private" (underscore name) or "internal" (public name in an undocumented module)
    used_for: str
    guarded_by: tuple[str, ...]


_UNIT = "tests/unit/test_fastpath_codec.py"
_STORES = "tests/integration/test_fastpath_stores.py"
_PRESENT = "tests/unit/test_fastpath_feast_private.py"

PRIVATE_API: tuple[PrivateApi, ...] = (
    PrivateApi(
        "feast.infra.online_stores.helpers._mmh3",
        "private",
        "hash field of a feature (murmur3 of <view>:<feature>)",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.infra.online_stores.helpers._redis_key",
        "private",
        "Redis key of an entity (the reference of the fast key encoder)",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.infra.online_stores.redis.RedisOnlineStore._parse_connection_string",
        "private",
        "the Redis client arguments Feast itself uses (host, port, db, password, TLS, timeouts)",
        (_PRESENT, _STORES),
    ),
    PrivateApi(
        "feast.infra.online_stores.sqlite.SqliteOnlineStore._get_db_path",
        "private",
        "the SQLite online store's file (pruner, completion markers)",
        (_PRESENT, _STORES),
    ),
    PrivateApi(
        "feast.utils._coerce_datetime",
        "private",
        "Feast's conversion of an event time before Timestamp.FromDatetime (the timestamp check)",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.utils.make_tzaware",
        "internal",
        "Feast's time zone rule for event times (the timestamp check)",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.infra.online_stores.helpers.compute_versioned_name",
        "internal",
        "a view's name in hash fields under online view versioning (<view>_v<N>)",
        (_PRESENT, _STORES),
    ),
    PrivateApi(
        "feast.infra.online_stores.helpers.compute_table_id",
        "internal",
        "the SQLite online table of a view (pruner)",
        (_PRESENT, _STORES),
    ),
    PrivateApi(
        "feast.infra.key_encoding_utils.deserialize_entity_key",
        "internal",
        "the join key value of a stored Redis key (pruner, reader's sampling)",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.infra.key_encoding_utils.serialize_entity_key_prefix",
        "internal",
        "the SCAN pattern of one join key's keys",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.infra.online_stores.redis.RedisOnlineStoreConfig",
        "internal",
        "is the online store Feast's Redis store",
        (_PRESENT, _STORES),
    ),
    PrivateApi(
        "feast.infra.online_stores.redis.RedisType",
        "internal",
        "plain Redis or Redis Cluster",
        (_PRESENT, _STORES),
    ),
    PrivateApi(
        "feast.type_map.python_values_to_proto_values",
        "internal",
        "values and keys as Feast's materialize converts them (reference of the fast encoders)",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.type_map.feast_value_type_to_python_type",
        "internal",
        "a stored value as get_online_features returns it",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.protos.feast.types.Value_pb2.Value",
        "internal",
        "the serialized ValueProto stored per feature",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.protos.feast.types.EntityKey_pb2.EntityKey",
        "internal",
        "the entity key serialized into a Redis key",
        (_PRESENT, _UNIT, _STORES),
    ),
    PrivateApi(
        "feast.infra.registry.base_registry.BaseRegistry.get_any_feature_view",
        "internal",
        "a FeatureService projection's view, as get_online_features resolves it",
        (_PRESENT, _STORES),
    ),
    PrivateApi(
        "feast.infra.registry.base_registry.BaseRegistry.get_feature_view_by_version",
        "internal",
        "a version-pinned projection's view snapshot",
        (_PRESENT, _STORES),
    ),
    PrivateApi(
        "feast.infra.registry.base_registry.BaseRegistry.apply_materialization",
        "internal",
        "the direct writer records a view's window as Feast's materialize does",
        (_PRESENT, _STORES),
    ),
)


def feast_version_problem(*, installed: str | None = None) -> str | None:
    """Why the direct paths should not be chosen automatically (None: Feast is the verified one).

    ``installed`` defaults to the installed Feast distribution's version.
    """
    version = installed if installed is not None else importlib.metadata.version("feast")
    if version == VERIFIED_FEAST_VERSION:
        return None
    return (
        f"installed Feast {version} is not {VERIFIED_FEAST_VERSION}, the version ChurnOps' Redis "
        "layout codec was verified against"
    )


# -- private names ------------------------------------------------------------------------


def mmh3(text: str) -> bytes:
    """``helpers._mmh3``: Feast's hash field name of ``<view>:<feature>``."""
    from feast.infra.online_stores.helpers import _mmh3

    return bytes(_mmh3(text))


def redis_key(*, project: str, entity_key: Any, version: int) -> bytes:
    """``helpers._redis_key``: the Redis key of an ``EntityKey`` proto in ``project``."""
    from feast.infra.online_stores.helpers import _redis_key

    return bytes(_redis_key(project, entity_key, entity_key_serialization_version=version))


def redis_connection(connection_string: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``RedisOnlineStore._parse_connection_string``: startup nodes and client keywords."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    nodes, kwargs = RedisOnlineStore._parse_connection_string(connection_string)
    return list(nodes), dict(kwargs)


def sqlite_path(*, config: Any) -> Path:
    """``SqliteOnlineStore._get_db_path``: the SQLite online store's database file."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    return Path(SqliteOnlineStore._get_db_path(config))


def feast_timestamp(when: Any) -> Any:
    """The aware datetime Feast's Redis writer turns an event time into (``_coerce_datetime`` then
    ``make_tzaware``) before ``Timestamp.FromDatetime``."""
    from feast.utils import _coerce_datetime, make_tzaware

    return make_tzaware(_coerce_datetime(when))  # type: ignore[no-untyped-call]


# -- internal modules ---------------------------------------------------------------------


def versioned_name(*, view: Any, versioning: bool) -> str:
    """``helpers.compute_versioned_name``: a view's name in hash fields."""
    from feast.infra.online_stores.helpers import compute_versioned_name

    return str(compute_versioned_name(view, versioning))


def sqlite_table(*, project: str, view: Any, versioning: bool) -> str:
    """``helpers.compute_table_id``: the SQLite online table of a view."""
    from feast.infra.online_stores.helpers import compute_table_id

    return str(compute_table_id(project, view, versioning))


def deserialize_key(blob: bytes, *, version: int) -> Any:
    """``key_encoding_utils.deserialize_entity_key``: an ``EntityKey`` proto."""
    from feast.infra.key_encoding_utils import deserialize_entity_key

    return deserialize_entity_key(blob, entity_key_serialization_version=version)


def key_prefix(join_keys: list[str], *, version: int) -> bytes:
    """``key_encoding_utils.serialize_entity_key_prefix``: what every key of these join keys starts with."""
    from feast.infra.key_encoding_utils import serialize_entity_key_prefix

    return bytes(serialize_entity_key_prefix(join_keys, entity_key_serialization_version=version))


def redis_store_kind(online: Any) -> str | None:
    """``redis_type`` of Feast's ``RedisOnlineStoreConfig`` (``redis`` / ``redis_cluster``);
    None when the online store is not Feast's Redis store."""
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType

    if not isinstance(online, RedisOnlineStoreConfig):
        return None
    return str(RedisType(online.redis_type).value)


def to_proto_values(values: Any, value_type: Any) -> list[Any]:
    """``type_map.python_values_to_proto_values``: ``ValueProto``s as Feast's materialize makes them."""
    from feast.type_map import python_values_to_proto_values

    return list(python_values_to_proto_values(values, value_type))


def to_python_value(proto: Any) -> Any:
    """``type_map.feast_value_type_to_python_type``: a ``ValueProto`` as Feast's reader returns it."""
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(proto)


def registry_view(*, store: Any, name: str, version_tag: Any = None) -> Any:
    """The registry's view ``name`` as ``get_online_features`` resolves a projection: the
    ``version_tag`` snapshot (``get_feature_view_by_version``), else ``get_any_feature_view``."""
    if version_tag is not None:
        return store.registry.get_feature_view_by_version(name, store.project, version_tag, True)
    return store.registry.get_any_feature_view(name, store.project, True)


def record_materialization(*, store: Any, view: Any, start: Any, end: Any) -> None:
    """``registry.apply_materialization``: the view's window, recorded as Feast's materialize does."""
    store.registry.apply_materialization(view, store.project, start, end)


def value_proto() -> Any:
    """The ``ValueProto`` class (``feast.protos.feast.types.Value_pb2.Value``)."""
    from feast.protos.feast.types.Value_pb2 import Value

    return Value


def entity_key_proto(*, join_keys: list[str], values: list[Any]) -> Any:
    """An ``EntityKey`` proto (``feast.protos.feast.types.EntityKey_pb2``)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

    return EntityKey(join_keys=join_keys, entity_values=values)


__all__ = [
    "PRIVATE_API",
    "VERIFIED_FEAST_VERSION",
    "PrivateApi",
    "deserialize_key",
    "entity_key_proto",
    "feast_timestamp",
    "feast_version_problem",
    "key_prefix",
    "mmh3",
    "record_materialization",
    "redis_connection",
    "redis_key",
    "redis_store_kind",
    "registry_view",
    "sqlite_path",
    "sqlite_table",
    "to_proto_values",
    "to_python_value",
    "value_proto",
    "versioned_name",
]
