"""Feast object definitions for ChurnOps, built for one sources directory.

``feature_repo/`` re-exports these for ``feast apply``; the CLI applies the same objects
programmatically, so there is one definition of the feature contract.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_source import DataSource
from feast.types import PrimitiveFeastType

from churnops.contracts.columns import (
    CREATED_TS,
    ENTITY,
    EVENT_TS,
    FEATURE_SERVICE,
    JOIN_KEY,
    KIND_TYPES,
    LABEL_SOURCE,
    VIEWS,
    Column,
    View,
    view_columns,
)
from churnops.contracts.log_filters import drop_messages
from churnops.contracts.sources import source_glob

TTL: dict[View, timedelta] = {
    # Profile attributes rarely change; account and services are refreshed monthly, so a
    # value older than 45 days means the customer dropped out of the snapshots.
    "profile": timedelta(days=400),
    "account": timedelta(days=45),
    "services": timedelta(days=45),
}


def feast_type(col: Column) -> PrimitiveFeastType:
    """The Feast field type of a column: its kind's ``KIND_TYPES[kind].feast`` name."""
    return PrimitiveFeastType[KIND_TYPES[col.kind].feast]


OfflineStore = Literal["duckdb", "spark"]
SOURCE_CLASS: dict[str, str] = {"duckdb": "FileSource", "spark": "SparkSource"}
"""The Feast source class :func:`build_source` registers for each offline store (and the only
one that store reads: Feast's DuckDB store asserts a FileSource, its Spark store a SparkSource)."""


@dataclass(frozen=True)
class Definitions:
    """Every Feast object of the repo, ready for ``FeatureStore.apply``."""

    customer: Entity
    sources: dict[str, DataSource]
    views: dict[View, FeatureView]
    churn_v1: FeatureService

    def objects(self) -> list[object]:
        return [self.customer, *self.sources.values(), *self.views.values(), self.churn_v1]


def build_source(*, sources_dir: Path, name: str, offline_store: OfflineStore) -> DataSource:
    """One source over its parquet part files: a FileSource for duckdb, a SparkSource for Spark."""
    if offline_store == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        # Spark reads every part file of the directory (a glob would also do).
        return SparkSource(
            name=f"{name}_source",
            path=str((sources_dir / name).resolve()),
            file_format="parquet",
            timestamp_field=EVENT_TS,
            created_timestamp_column=CREATED_TS,
        )
    return FileSource(
        name=f"{name}_source",
        path=source_glob(sources_dir, name),
        timestamp_field=EVENT_TS,
        created_timestamp_column=CREATED_TS,
    )


def build_definitions(*, sources_dir: Path, offline_store: OfflineStore = "duckdb") -> Definitions:
    """Entity, sources (absolute paths), the three feature views and FeatureService churn_v1."""
    # `feast apply` checks a FileSource path with a stat that cannot expand our part-file globs
    # and warns "FileSource path does not exist" for every source; DuckDB reads the globs fine.
    drop_messages(
        "feast.infra.offline_stores.file_source",
        (f"Could not validate FileSource path '{sources_dir.resolve()}{os.sep}",),
    )
    customer = Entity(
        name=ENTITY,
        join_keys=[JOIN_KEY],
        value_type=ValueType.STRING,
        description="A subscriber, keyed by the Telco customer id (e.g. 7590-VHVEG).",
    )
    sources = {
        name: build_source(sources_dir=sources_dir, name=name, offline_store=offline_store)
        for name in (*VIEWS, LABEL_SOURCE)
    }
    views: dict[View, FeatureView] = {
        view: FeatureView(
            name=view,
            entities=[customer],
            ttl=TTL[view],
            schema=[Field(name=c.name, dtype=feast_type(c)) for c in view_columns(view)],
            source=sources[view],
            online=True,
            tags={"owner": "churnops"},
        )
        for view in VIEWS
    }
    churn_v1 = FeatureService(
        name=FEATURE_SERVICE,
        features=[views[v] for v in VIEWS],
        description="The contract between training and serving for the churn model.",
    )
    return Definitions(customer=customer, sources=sources, views=views, churn_v1=churn_v1)
