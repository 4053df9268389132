"""Feast's Redis encodings: entity keys, feature values and event times, both ways.

Feast's ``RedisOnlineStore`` keeps one hash per entity: key = ``serialize_entity_key`` of the
entity key + the project name; per view, one field per feature (``fields``) holding a serialized
``ValueProto``, and ``_ts:<view>`` holding the serialized ``google.protobuf.Timestamp`` of the
event time.

The fast encoders here are re-implementations, each checked against Feast's own functions
(``feast_private``) on a sample of every batch (values, timestamps) or on probes (keys), and
raising ``LayoutUnsupported`` when they differ.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from churnops.features.fastpath import feast_private

CHECK_ROWS = 256  # values per batch compared with Feast's own encoders

_DOUBLE = struct.Struct("<Bd").pack  # ValueProto.double_val: field 5, wire type 1 (tag 0x29)
_DOUBLE_TAG = 0x29
_U32 = struct.Struct("<I").pack
_U32X2 = struct.Struct("<II").pack
_STRING_TYPE = 2  # feast ValueType.STRING in serialize_entity_key


class LayoutUnsupported(ValueError):
    """This codec cannot encode or decode something exactly as Feast does."""


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
        return self.proto_key(feast_private.to_proto_values([value], self.value_type)[0])

    def proto_key(self, value: Any) -> bytes:
        """The key of a join key ``ValueProto``, by Feast's ``_redis_key``."""
        key = feast_private.entity_key_proto(join_keys=[self.join_key], values=[value])
        return feast_private.redis_key(project=self.project, entity_key=key, version=self.version)

    def decode(self, key: bytes) -> Any:
        """The join key value of a Redis key written for this project (Feast's deserializer)."""
        project = self.project.encode("utf-8")
        if not key.endswith(project) or not key.startswith(self._prefix()):
            raise LayoutUnsupported(f"key {key!r} is not a {self.join_key!r} key of project {self.project!r}")
        proto = feast_private.deserialize_key(key[: -len(project)], version=self.version)
        if len(proto.entity_values) != 1:
            raise LayoutUnsupported(f"key {key!r} holds {len(proto.entity_values)} values, not one")
        return _scalar(proto.entity_values[0])

    def _prefix(self) -> bytes:
        return feast_private.key_prefix([self.join_key], version=self.version)

    def scan_pattern(self) -> bytes:
        """A SCAN MATCH pattern for this join key's keys in this project (as Feast's deletes scan)."""
        return _glob_escape(self._prefix()) + b"*" + _glob_escape(self.project.encode("utf-8"))


_PROBES = ("7590-VHVEG", "", "é-ü 漢字", "x" * 300)


def entity_key_codec(*, config: Any, join_key: Any) -> EntityKeyCodec:
    """The key codec for a view's join key (a Feast ``Field``) under the store's config.

    The fast string encoder (serialize_entity_key v3, one string join key: count, (type,
    length, name), (type, length, value)) is used only if it gives Feast's bytes on probes.
    """
    value_type = join_key.dtype.to_value_type()
    version = int(config.entity_key_serialization_version)
    slow = EntityKeyCodec(
        project=config.project, join_key=join_key.name, value_type=value_type, version=version
    )
    if value_type.name != "STRING" or version < 3:
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
    return feast_private.to_python_value(value)


def _glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out += b"\\"
        out.append(b)
    return bytes(out)


# -- timestamps ---------------------------------------------------------------------------


def encode_timestamps(micros: Sequence[int], *, check: Sequence[Any] = ()) -> list[bytes]:
    """``_ts`` values for event times given as integer microseconds since the epoch (> 0).

    The epoch itself serializes to an empty Timestamp, which readers take for "no row": refused.

    ``check``: the same times as pandas/datetime values, compared (pairwise, from the start)
    with Feast's own path (``make_tzaware`` + ``Timestamp.FromDatetime``).
    """
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
        stamp.FromDatetime(feast_private.feast_timestamp(when))
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
    Value = feast_private.value_proto()
    kind = value_type.name
    out: list[bytes]
    if kind == "DOUBLE":
        pack, tag = _DOUBLE, _DOUBLE_TAG
        # Null and NaN both become an empty ValueProto in Feast.
        out = [b"" if v is None or v != v else pack(tag, v) for v in column.to_pylist()]
    elif kind in ("STRING", "INT64"):
        values = column.to_pylist()
        if kind == "INT64" and column.null_count:
            # Feast converts through numpy, where an int column with nulls is float64.
            values = [None if v is None else int(float(v)) for v in values]
        make: Callable[[Any], Any] = (
            (lambda v: Value(string_val=v)) if kind == "STRING" else (lambda v: Value(int64_val=v))
        )
        cache: dict[Any, bytes] = {None: b""}
        out = []
        for v in values:
            blob = cache.get(v)
            if blob is None:
                blob = cache[v] = make(v).SerializeToString()
            out.append(blob)
    else:
        protos = feast_private.to_proto_values(column.to_numpy(zero_copy_only=False), value_type)
        return [p.SerializeToString() for p in protos]
    sample = column.to_numpy(zero_copy_only=False)[:CHECK_ROWS]
    expected = [p.SerializeToString() for p in feast_private.to_proto_values(sample, value_type)]
    if out[: len(expected)] != expected:
        raise LayoutUnsupported(f"{value_type} value encoding differs from Feast's")
    return out


def decode_value(blob: bytes) -> Any:
    """A feature value as Feast's reader returns it to ``get_online_features`` callers."""
    value = feast_private.value_proto()()
    value.ParseFromString(blob)
    return feast_private.to_python_value(value)


__all__ = [
    "CHECK_ROWS",
    "EntityKeyCodec",
    "LayoutUnsupported",
    "decode_timestamp",
    "decode_value",
    "encode_timestamps",
    "encode_values",
    "entity_key_codec",
]
