"""Registering the Feast objects (the store itself is built from Settings by ``churnops.wiring``)."""

from __future__ import annotations

from feast import FeatureStore

from churnops.features.definitions import Definitions


def apply(*, store: FeatureStore, defs: Definitions) -> list[str]:
    """Register the entity, sources, views and service; returns the names applied."""
    store.apply(defs.objects())  # type: ignore[arg-type]
    return [getattr(o, "name", "") for o in defs.objects()]
