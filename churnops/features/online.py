"""Online features for serving: churn_v1 for a list of customer ids, with per-row status.

Feast does not enforce a view's TTL on online reads (an old value comes back as present),
so staleness is judged here from each view's event timestamp against its TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from feast import FeatureService, FeatureStore
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.type_map import feast_value_type_to_python_type

from churnops.contracts.clock import current_time
from churnops.contracts.columns import JOIN_KEY, feature_names
from churnops.contracts.online import OnlineRow, classify


@dataclass(frozen=True)
class ServiceLayout:
    """Which feature belongs to which view, and each view's TTL (resolved once, not per call)."""

    service: FeatureService
    view_of: dict[str, str]
    ttl: dict[str, timedelta | None]


def service_layout(*, store: FeatureStore, feature_service: str) -> ServiceLayout:
    """Resolve a FeatureService's features to their views and TTLs from the registry."""
    service = store.get_feature_service(feature_service)
    view_of: dict[str, str] = {}
    ttl: dict[str, timedelta | None] = {}
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        ttl[projection.name] = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None
        for feature in projection.features:
            view_of[feature.name] = projection.name
    return ServiceLayout(service=service, view_of=view_of, ttl=ttl)


def fetch_online(
    *,
    store: FeatureStore,
    layout: ServiceLayout,
    customer_ids: Sequence[str],
    now: datetime | None = None,
) -> list[OnlineRow]:
    """Fetch the service's features for each id (in order) and classify each row.

    ``unknown_customer``: no view has a row for the id. ``stale_features``: some view's value
    is older than its TTL at ``now``. ``missing_features``: some view has no row.
    """
    if not customer_ids:
        return []
    now = current_time(now)
    response = store.get_online_features(
        features=layout.service, entity_rows=[{JOIN_KEY: cid} for cid in customer_ids]
    )
    proto = response.proto
    names = list(proto.metadata.feature_names.val)
    columns: dict[str, list[Any]] = {}
    statuses: dict[str, list[int]] = {}
    stamps: dict[str, list[Any]] = {}
    for name, vector in zip(names, proto.results, strict=True):
        if name == JOIN_KEY:
            continue
        columns[name] = [feast_value_type_to_python_type(v) for v in vector.values]
        statuses[name] = list(vector.statuses)
        stamps[name] = list(vector.event_timestamps)
    rows: list[OnlineRow] = []
    wanted = [n for n in feature_names() if n in columns] + [n for n in columns if n not in feature_names()]
    for i, cid in enumerate(customer_ids):
        view_ts: dict[str, datetime | None] = {}
        missing: list[str] = []
        for name in wanted:
            view = layout.view_of.get(name, name)
            # Feast's Redis store answers an absent key with status PRESENT, an empty value and
            # event time 0 (measured with feast 0.67), so that counts as not found too.
            stamp = stamps[name][i]
            absent = stamp.seconds == 0 and stamp.nanos == 0 and columns[name][i] is None
            if statuses[name][i] == FieldStatus.NOT_FOUND or absent:
                missing.append(name)
                view_ts.setdefault(view, None)
            elif view_ts.get(view) is None:
                # Exact to the microsecond, as Feast's reader (and the direct reader) decode it.
                view_ts[view] = datetime.fromtimestamp(stamp.seconds, tz=UTC) + timedelta(
                    microseconds=stamp.nanos // 1000
                )
        rows.append(
            classify(
                customer_id=cid,
                features={name: columns[name][i] for name in wanted},
                view_ts=view_ts,
                missing=missing,
                ttl=layout.ttl,
                now=now,
            )
        )
    return rows


__all__ = ["ServiceLayout", "fetch_online", "service_layout"]
