"""Building a Feast ``FeatureStore`` from ChurnOps settings (no feature_store.yaml needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from feast import FeatureStore
from feast.repo_config import RepoConfig

from churnops.features.definitions import Definitions, build_definitions
from churnops.settings import Settings


def repo_config(settings: Settings) -> RepoConfig:
    """The Feast config for these settings: duckdb offline, SQLite or Redis online, SQL registry."""
    online: dict[str, Any]
    if settings.redis_url:
        online = {"type": "redis", "connection_string": settings.redis_connection_string()}
    else:
        online = {"type": "sqlite", "path": str(settings.feast_dir / "online.db")}
    return RepoConfig(
        project=settings.project,
        provider="local",
        registry={
            "registry_type": "sql",
            "path": settings.registry_url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        },
        offline_store={"type": "duckdb"},
        online_store=online,
        entity_key_serialization_version=3,
        mlflow={"enabled": True, "tracking_uri": settings.tracking_uri, "auto_log": True},
    )


def feature_store(settings: Settings) -> FeatureStore:
    """A FeatureStore over the settings' home (created on demand, nothing at import)."""
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(settings.feast_dir), config=repo_config(settings))


def definitions(settings: Settings) -> Definitions:
    return build_definitions(sources_dir=settings.sources_dir)


def apply(*, store: FeatureStore, defs: Definitions) -> list[str]:
    """Register the entity, sources, views and service; returns the names applied."""
    store.apply(defs.objects())  # type: ignore[arg-type]
    return [getattr(o, "name", "") for o in defs.objects()]


def feature_repo_dir() -> Path:
    """The project's feature_repo/ (for `feast apply` from a checkout)."""
    return Path(__file__).resolve().parents[2] / "feature_repo"
