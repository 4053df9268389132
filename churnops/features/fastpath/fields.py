"""Which fields of Feast's Redis hashes hold a view's (or a FeatureService's) features, and
decoding an HMGET reply of them.

Per view, one field per feature named by the murmur3 hash of ``<view>:<feature>`` and
``_ts:<view>`` for the event time. ``<view>`` is the view's own name, with Feast's ``_v<N>``
suffix when ``registry.enable_online_feature_view_versioning`` is on; a FeatureService
projection (feature subset, ``with_name`` alias) reads the same fields, and its join key map
only renames request columns, never the stored key. The names come from Feast's own functions
(``feast_private``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from churnops.features.fastpath import feast_private
from churnops.features.fastpath.codec import (
    EntityKeyCodec,
    LayoutUnsupported,
    decode_timestamp,
    decode_value,
    entity_key_codec,
)

_CACHE = 65_536  # distinct blobs remembered per decoder before it starts over


# -- hash fields --------------------------------------------------------------------------


def online_view_name(*, view: Any, config: Any) -> str:
    """The view's name inside Redis hashes: Feast's versioned name (``account_v2``) or its name."""
    return feast_private.versioned_name(
        view=view, versioning=config.registry.enable_online_feature_view_versioning
    )


def feature_field(*, online_name: str, feature: str) -> bytes:
    """The hash field of one feature: Feast's murmur3 of ``<view>:<feature>``."""
    return feast_private.mmh3(f"{online_name}:{feature}")


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
            if (
                projection.version_tag is not None
                and not config.registry.enable_online_feature_view_versioning
            ):
                raise LayoutUnsupported(f"{projection.name_to_use()}: online versioning is off")
            view = feast_private.registry_view(
                store=store, name=projection.name, version_tag=projection.version_tag
            )
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


# -- decoding a reply ----------------------------------------------------------------------


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
    "DecodedRow",
    "HashDecoder",
    "ServiceFields",
    "ViewFields",
    "feature_field",
    "online_view_name",
    "service_fields",
    "timestamp_field",
    "view_fields",
]
