"""Registering the Feast objects (the store itself is built from Settings by ``churnops.wiring``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from feast import FeatureStore

from churnops.features.definitions import Definitions
from churnops.features.engine_switch import replace_changed_sources


@dataclass(frozen=True)
class Applied:
    """What an apply registered: every object's name, and the sources it re-registered because
    the home was applied under another offline store before (name -> the old source class)."""

    names: list[str]
    replaced: dict[str, str] = field(default_factory=dict)


def apply(*, store: FeatureStore, defs: Definitions) -> Applied:
    """Register the entity, sources, views and service, for the store's offline store.

    A source registered under the same name with another class (the home was applied under the
    other offline store) is replaced, and the views that embed it are updated
    (``churnops.features.engine_switch``).
    """
    replaced = replace_changed_sources(store=store, sources=defs.sources.values())
    store.apply(defs.objects())  # type: ignore[arg-type]
    return Applied(names=[getattr(o, "name", "") for o in defs.objects()], replaced=replaced)
