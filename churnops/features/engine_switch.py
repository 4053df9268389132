"""A home applied under one offline store and used under the other (DuckDB <-> Spark).

Feast's registry keeps each source's class: ``FileSource`` when the home was applied under DuckDB,
``SparkSource`` under Spark (:data:`~churnops.features.definitions.SOURCE_CLASS`), and each store
reads only its own. Used under the other store, Feast fails inside the retrieval ("SparkOfflineStore
requires SparkSource or IcebergSource, got FileSource", or a bare ``AssertionError`` in its DuckDB
store); :func:`require_readable_sources` refuses before that with the fix.

The fix is ``churnops features apply`` under the new store, which runs
:func:`replace_changed_sources` first: Feast's SQL registry cannot update a source whose class
changed (it parses the stored source as the new class: an ``AssertionError`` for a FileSource read
as a SparkSource), so the stale sources are deleted and the apply that follows registers the new
ones and updates the feature views that embed them (their materialization intervals kept).
"""

from __future__ import annotations

from collections.abc import Iterable

from feast import FeatureStore
from feast.data_source import DataSource
from feast.errors import DataSourceObjectNotFoundException

from churnops.features.definitions import SOURCE_CLASS


class SourcesForOtherStore(ValueError):
    """The registry's sources were applied under another offline store than the store's own."""


def wanted_source_class(store: FeatureStore) -> str | None:
    """The source class the store's offline store reads (None: not a store ChurnOps configures)."""
    return SOURCE_CLASS.get(str(getattr(store.config.offline_store, "type", "")))


def require_readable_sources(*, store: FeatureStore, views: Iterable[str]) -> None:
    """Raise :class:`SourcesForOtherStore` when a view's registered source is not of the class the
    store's offline store reads, naming the store it was applied for and the fix."""
    wanted = wanted_source_class(store)
    if wanted is None:
        return
    found: dict[str, list[str]] = {}
    for name in views:
        kind = type(store.get_feature_view(name, allow_registry_cache=True).batch_source).__name__
        if kind != wanted:
            found.setdefault(kind, []).append(name)
    if not found:
        return
    owners = {cls: store_name for store_name, cls in SOURCE_CLASS.items()}
    applied = ", ".join(
        f"{kind} (applied under {owners.get(kind, 'another store')})" for kind in sorted(found)
    )
    names = ", ".join(sorted(n for names in found.values() for n in names))
    current = store.config.offline_store.type
    back = " or ".join(sorted({owners[k] for k in found if k in owners})) or "its former value"
    raise SourcesForOtherStore(
        f"the offline store is {current} (CHURNOPS_OFFLINE_STORE), but Feast's registry holds the "
        f"sources of views {names} as {applied}: run `churnops features apply` to re-register "
        f"them for {current}, or set CHURNOPS_OFFLINE_STORE back to {back}"
    )


def replace_changed_sources(*, store: FeatureStore, sources: Iterable[DataSource]) -> dict[str, str]:
    """Delete each registered source whose class differs from the one about to be applied under
    its name; returns ``{name: old class}`` of those deleted (empty when nothing changed).

    Not atomic with the apply that follows: if that apply fails, the sources are missing from the
    registry until an apply succeeds (the views still embed their old source meanwhile).
    """
    replaced: dict[str, str] = {}
    for source in sources:
        try:
            old = store.registry.get_data_source(source.name, store.project, allow_cache=False)
        except DataSourceObjectNotFoundException:
            continue
        if type(old) is not type(source):
            store.registry.delete_data_source(source.name, store.project, commit=True)
            replaced[source.name] = type(old).__name__
    return replaced
