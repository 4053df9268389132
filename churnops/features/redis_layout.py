"""Feast's Redis online layout in one place, for the direct writer and the direct reader.

Feast's ``RedisOnlineStore`` keeps one hash per entity: key = ``serialize_entity_key`` of the
entity key + the project name; per view, one field per feature named by the murmur3 hash of
``<view>:<feature>`` holding a serialized ``ValueProto``, and ``_ts:<view>`` holding the
serialized ``google.protobuf.Timestamp`` of the event time. ``<view>`` is the view's own name,
with Feast's ``_v<N>`` suffix when ``registry.enable_online_feature_view_versioning`` is on; a
FeatureService projection (feature subset, ``with_name`` alias) reads the same fields, and its
join key map only renames request columns, never the stored key.

The hash-field and versioned-name functions are Feast's own; the fast encoders below are
re-implementations, each checked against Feast's functions on a sample of every batch (writer)
or on the first key (key encoder), and raising ``LayoutUnsupported`` when they differ. The
layout itself is verified for Feast ``VERIFIED_FEAST_VERSION`` (the parity tests); callers
choosing a direct path automatically ask ``feast_version_problem`` first.
"""

from __future__ import annotations

import importlib.metadata
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

VERIFIED_FEAST_VERSION = "0.67.0"
CHECK_ROWS = 256  # values per batch compared with Feast's own encoders

_DOUBLE = struct.Struct("<Bd").pack  # ValueProto.double_val: field 5, wire type 1 (tag 0x29)
_DOUBLE_TAG = 0x29
_U32 = struct.Struct("<I").pack
_U32X2 = struct.Struct("<II").pack
_STRING_TYPE = 2  # feast ValueType.STRING in serialize_entity_key
_CACHE = 65_536  # distinct blobs remembered per decoder before it starts over


class LayoutUnsupported(ValueError):
    """This codec cannot encode or decode something exactly as Feast does."""


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


def direct_store_problem(*, config: Any, cluster: bool = False) -> str | None:
    """Why a direct path cannot address this Feast store's online store (None: it can).

    ``cluster=True``: the caller also handles Redis Cluster (per-key commands routed by slot,
    as serving's reader does); the writer's multi-key Lua batches need one node.
    """
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType

    online = config.online_store
    if not isinstance(online, RedisOnlineStoreConfig):
        return f"the direct path needs Feast's Redis online store, not {getattr(online, 'type', online)!r}"
    allowed = (RedisType.redis, RedisType.redis_cluster) if cluster else (RedisType.redis,)
    if online.redis_type not in allowed:
        return f"the direct path supports plain Redis, not {online.redis_type.value}"
    return None


def is_cluster(*, config: Any) -> bool:
    """The online store is Feast's Redis store in ``redis_cluster`` mode."""
    return getattr(config.online_store, "redis_type", None) == "redis_cluster"


def cluster_client_arguments(*, config: Any) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The startup nodes and client keywords Feast builds its RedisCluster from (its own parser
    of the connection string: same password, timeouts, TLS); a cluster has no ``db``."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    nodes, kwargs = RedisOnlineStore._parse_connection_string(config.online_store.connection_string)
    kwargs.pop("db", None)
    return [(str(n["host"]), int(n["port"])) for n in nodes], kwargs


# -- hash fields --------------------------------------------------------------------------


def online_view_name(*, view: Any, config: Any) -> str:
    """The view's name inside Redis hashes: Feast's versioned name (``account_v2``) or its name."""
    from feast.infra.online_stores.helpers import compute_versioned_name

    return compute_versioned_name(view, config.registry.enable_online_feature_view_versioning)


def feature_field(*, online_name: str, feature: str) -> bytes:
    """The hash field of one feature: Feast's murmur3 of ``<view>:<feature>``."""
    from feast.infra.online_stores.helpers import _mmh3

    return bytes(_mmh3(f"{online_name}:{feature}"))


def timestamp_field(*, online_name: str) -> str:
    """The hash field holding the view's event time."""
    return f"_ts:{online_name}"


@dataclass(frozen=True)
class ViewFields:
    """One view's fields in a hash: features in the given order, then its timestamp."""

    view: str  # the registry name (what layouts and statuses are keyed by)
    online_name: str
    features: tuple[str, ...]
    fields: tuple[bytes, ...]
    ts_field: str


def view_fields(*, view: Any, config: Any, features: Sequence[str] | None = None) -> ViewFields:
    """The fields of ``features`` (default: all of the view's) as Feast names them."""
    names = tuple(features if features is not None else (f.name for f in view.features))
    online = online_view_name(view=view, config=config)
    return ViewFields(
        view=view.name,
        online_name=online,
        features=names,
        fields=tuple(feature_field(online_name=online, feature=n) for n in names),
        ts_field=timestamp_field(online_name=online),
    )


# -- entity keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityKeyCodec:
    """Redis keys for one join key: ``serialize_entity_key`` + project, as Feast's ``_redis_key``.

    Build it with ``entity_key_codec``: that decides once, against Feast, whether the fast
    string encoder may be used (no per-key check afterwards).
    """

    project: str
    join_key: str
    value_type: Any  # feast.value_type.ValueType
    version: int  # the store's entity_key_serialization_version
    fast_head: bytes | None = field(default=None, repr=False)  # None: every key through Feast

    def encode(self, values: Sequence[Any]) -> list[bytes]:
        """One key per value (python values of the join key's type; no nulls)."""
        head = self.fast_head
        if head is not None and all(type(v) is str for v in values):
            project = self.project.encode("utf-8")
            return [
                head + _U32X2(_STRING_TYPE, len(b)) + b + project for b in (v.encode("utf8") for v in values)
            ]
        return [self.feast_key(v) for v in values]

    def feast_key(self, value: Any) -> bytes:
        """One key through Feast's own functions (the reference the fast encoder is held to)."""
        from feast.type_map import python_values_to_proto_values

        return self.proto_key(python_values_to_proto_values([value], self.value_type)[0])

    def proto_key(self, value: Any) -> bytes:
        """The key of a join key ``ValueProto``, by Feast's ``_redis_key``."""
        from feast.infra.online_stores.helpers import _redis_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey

        key = EntityKey(join_keys=[self.join_key], entity_values=[value])
        return bytes(_redis_key(self.project, key, entity_key_serialization_version=self.version))

    def decode(self, key: bytes) -> Any:
        """The join key value of a Redis key written for this project (Feast's deserializer)."""
        from feast.infra.key_encoding_utils import deserialize_entity_key

        project = self.project.encode("utf-8")
        if not key.endswith(project) or not key.startswith(self._prefix()):
            raise LayoutUnsupported(f"key {key!r} is not a {self.join_key!r} key of project {self.project!r}")
        proto = deserialize_entity_key(key[: -len(project)], entity_key_serialization_version=self.version)
        if len(proto.entity_values) != 1:
            raise LayoutUnsupported(f"key {key!r} holds {len(proto.entity_values)} values, not one")
        return _scalar(proto.entity_values[0])

    def _prefix(self) -> bytes:
        from feast.infra.key_encoding_utils import serialize_entity_key_prefix

        return bytes(
            serialize_entity_key_prefix([self.join_key], entity_key_serialization_version=self.version)
        )

    def scan_pattern(self) -> bytes:
        """A SCAN MATCH pattern for this join key's keys in this project (as Feast's deletes scan)."""
        return _glob_escape(self._prefix()) + b"*" + _glob_escape(self.project.encode("utf-8"))


_PROBES = ("7590-VHVEG", "", "é-ü 漢字", "x" * 300)


def entity_key_codec(*, config: Any, join_key: Any) -> EntityKeyCodec:
    """The key codec for a view's join key (a Feast ``Field``) under the store's config.

    The fast string encoder (serialize_entity_key v3, one string join key: count, (type,
    length, name), (type, length, value)) is used only if it gives Feast's bytes on probes.
    """
    from feast.value_type import ValueType

    value_type = join_key.dtype.to_value_type()
    version = int(config.entity_key_serialization_version)
    slow = EntityKeyCodec(
        project=config.project, join_key=join_key.name, value_type=value_type, version=version
    )
    if value_type != ValueType.STRING or version < 3:
        return slow
    encoded = join_key.name.encode("utf8")
    fast = EntityKeyCodec(
        project=config.project,
        join_key=join_key.name,
        value_type=value_type,
        version=version,
        fast_head=_U32(1) + _U32X2(_STRING_TYPE, len(encoded)) + encoded,
    )
    if fast.encode(_PROBES) != [slow.feast_key(p) for p in _PROBES]:
        return slow
    return fast


def _scalar(value: Any) -> Any:
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


def _glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out += b"\\"
        out.append(b)
    return bytes(out)


# -- a FeatureService's hash ---------------------------------------------------------------


@dataclass(frozen=True)
class ServiceFields:
    """Everything one HMGET of a FeatureService needs: the key codec and each view's fields."""

    keys: EntityKeyCodec
    views: tuple[ViewFields, ...]

    @property
    def fields(self) -> list[bytes | str]:
        """Per view, its feature fields then its timestamp field (the order ``decode`` expects)."""
        out: list[bytes | str] = []
        for view in self.views:
            out.extend(view.fields)
            out.append(view.ts_field)
        return out


def service_fields(*, store: Any, service: Any) -> ServiceFields:
    """Resolve a FeatureService's projections to the Redis fields Feast's reader reads for it.

    Each view is resolved as Feast's ``get_online_features`` resolves it (a version-pinned
    projection from its snapshot, else the registry's view, then ``with_projection``), so the
    versioned name is Feast's own, quirks included: in Feast 0.67 ``with_projection`` drops a
    "latest" view's ``current_version_number``, so an unpinned service reads the unversioned
    name although materialize writes the versioned one (both readers then find nothing).
    Raises ``LayoutUnsupported`` for what one id per row cannot address: views keyed by more
    than one join key, or by different ones, and on-demand views.
    """
    import copy

    from feast import FeatureView

    config = store.config
    views: list[ViewFields] = []
    join_keys: dict[str, Any] = {}
    for projection in service.feature_view_projections:
        try:
            if projection.version_tag is not None:
                if not config.registry.enable_online_feature_view_versioning:
                    raise LayoutUnsupported(f"{projection.name_to_use()}: online versioning is off")
                view = store.registry.get_feature_view_by_version(
                    projection.name, store.project, projection.version_tag, True
                )
            else:
                view = store.registry.get_any_feature_view(projection.name, store.project, True)
        except LayoutUnsupported:
            raise
        except Exception as error:  # not found, or a registry without version snapshots
            raise LayoutUnsupported(f"{service.name}: {projection.name_to_use()}: {error}") from error
        if not isinstance(view, FeatureView):
            raise LayoutUnsupported(f"{service.name}: {projection.name} is not a plain feature view")
        if len(view.entity_columns) != 1:
            raise LayoutUnsupported(f"{service.name}: {view.name} has {len(view.entity_columns)} join keys")
        key = view.entity_columns[0]
        join_keys[key.name] = key
        table = view.with_projection(copy.copy(projection))
        views.append(view_fields(view=table, config=config, features=[f.name for f in projection.features]))
    if len(join_keys) != 1:
        raise LayoutUnsupported(f"{service.name}: views are keyed by {sorted(join_keys)}, not one join key")
    codec = entity_key_codec(config=config, join_key=next(iter(join_keys.values())))
    return ServiceFields(keys=codec, views=tuple(views))


# -- timestamps ---------------------------------------------------------------------------


def encode_timestamps(micros: Sequence[int], *, check: Sequence[Any] = ()) -> list[bytes]:
    """``_ts`` values for event times given as integer microseconds since the epoch (> 0).

    The epoch itself serializes to an empty Timestamp, which readers take for "no row": refused.

    ``check``: the same times as pandas/datetime values, compared (pairwise, from the start)
    with Feast's own path (``make_tzaware`` + ``Timestamp.FromDatetime``).
    """
    from feast import utils
    from feast.utils import _coerce_datetime
    from google.protobuf.timestamp_pb2 import Timestamp

    if micros and min(micros) <= 0:
        raise LayoutUnsupported("event timestamps at or before 1970-01-01T00:00:00Z")
    cache: dict[int, bytes] = {}
    out = []
    for us in micros:
        blob = cache.get(us)
        if blob is None:
            seconds, rest = divmod(us, 1_000_000)
            blob = cache[us] = Timestamp(seconds=seconds, nanos=rest * 1000).SerializeToString()
        out.append(blob)
    for got, when in zip(out, check, strict=False):
        stamp = Timestamp()
        stamp.FromDatetime(utils.make_tzaware(_coerce_datetime(when)))  # type: ignore[no-untyped-call]
        if stamp.SerializeToString() != got:
            raise LayoutUnsupported(f"timestamp encoding differs from Feast's at {when}")
    return out


def decode_timestamp(blob: bytes | None) -> datetime | None:
    """An ``_ts`` value as Feast's reader returns it (None: absent or empty, which Feast would
    read as the epoch with the features present; the writer never writes the epoch)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    if not blob:
        return None
    stamp = Timestamp()
    stamp.ParseFromString(blob)
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1_000_000_000.0, tz=UTC)


# -- values -------------------------------------------------------------------------------


def encode_values(column: Any, value_type: Any) -> list[bytes]:
    """Serialized ``ValueProto``s of a pyarrow column, as ``python_values_to_proto_values`` makes them.

    DOUBLE, STRING and INT64 have fast encoders, checked against Feast on the first
    ``CHECK_ROWS`` values; any other type goes through Feast's function.
    """
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    out: list[bytes]
    if value_type == ValueType.DOUBLE:
        pack, tag = _DOUBLE, _DOUBLE_TAG
        # Null and NaN both become an empty ValueProto in Feast.
        out = [b"" if v is None or v != v else pack(tag, v) for v in column.to_pylist()]
    elif value_type in (ValueType.STRING, ValueType.INT64):
        values = column.to_pylist()
        if value_type == ValueType.INT64 and column.null_count:
            # Feast converts through numpy, where an int column with nulls is float64.
            values = [None if v is None else int(float(v)) for v in values]
        make: Callable[[Any], Any] = (
            (lambda v: Value(string_val=v))
            if value_type == ValueType.STRING
            else (lambda v: Value(int64_val=v))
        )
        cache: dict[Any, bytes] = {None: b""}
        out = []
        for v in values:
            blob = cache.get(v)
            if blob is None:
                blob = cache[v] = make(v).SerializeToString()
            out.append(blob)
    else:
        protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)
        return [p.SerializeToString() for p in protos]
    sample = column.to_numpy(zero_copy_only=False)[:CHECK_ROWS]
    expected = [p.SerializeToString() for p in python_values_to_proto_values(sample, value_type)]
    if out[: len(expected)] != expected:
        raise LayoutUnsupported(f"{value_type} value encoding differs from Feast's")
    return out


def decode_value(blob: bytes) -> Any:
    """A feature value as Feast's reader returns it to ``get_online_features`` callers."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    value = Value()
    value.ParseFromString(blob)
    return feast_value_type_to_python_type(value)


@dataclass(frozen=True)
class DecodedRow:
    """One hash read with ``ServiceFields.fields``: values, each view's event time, absent features."""

    features: dict[str, Any]
    view_ts: dict[str, datetime | None]
    missing: list[str]


class _Decoded(dict[bytes, Any]):
    """Blob -> decoded value, computed on first lookup; starts over past ``_CACHE`` entries."""

    def __init__(self, decode: Callable[[bytes], Any]) -> None:
        super().__init__()
        self._decode = decode

    def __missing__(self, blob: bytes) -> Any:
        if len(self) >= _CACHE:
            self.clear()
        value = self[blob] = self._decode(blob)
        return value


class HashDecoder:
    """Decodes HMGET replies of a service's fields; repeated blobs (categories, flags) decode once."""

    def __init__(self, layout: ServiceFields) -> None:
        self._views = [(v.view, v.features) for v in layout.views]
        self._values = _Decoded(decode_value)
        self._stamps = _Decoded(decode_timestamp)

    def decode(self, raw: Sequence[bytes | None]) -> DecodedRow:
        """A feature is missing when its field, or its view's timestamp, is absent."""
        features: dict[str, Any] = {}
        view_ts: dict[str, datetime | None] = {}
        missing: list[str] = []
        values, stamps = self._values, self._stamps
        i = 0
        for view, names in self._views:
            ts_raw = raw[i + len(names)]
            ts = stamps[ts_raw] if ts_raw else None
            view_ts[view] = ts
            for name in names:
                blob = raw[i]
                i += 1
                if blob is None or ts is None:
                    features[name] = None
                    missing.append(name)
                else:
                    features[name] = values[blob]
            i += 1
        return DecodedRow(features=features, view_ts=view_ts, missing=missing)


__all__ = [
    "CHECK_ROWS",
    "VERIFIED_FEAST_VERSION",
    "DecodedRow",
    "EntityKeyCodec",
    "HashDecoder",
    "LayoutUnsupported",
    "ServiceFields",
    "ViewFields",
    "cluster_client_arguments",
    "decode_timestamp",
    "decode_value",
    "direct_store_problem",
    "encode_timestamps",
    "encode_values",
    "entity_key_codec",
    "feast_version_problem",
    "feature_field",
    "is_cluster",
    "online_view_name",
    "service_fields",
    "timestamp_field",
    "view_fields",
]
