"""Point-in-time correct training frames for a FeatureService (Feast's DuckDB or Spark offline store)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureStore

from churnops.contracts.columns import (
    CREATED_TS,
    EVENT_TS,
    FEATURE_SERVICE,
    FEATURES,
    JOIN_KEY,
    KIND_TYPES,
    LABEL_SOURCE,
)
from churnops.contracts.sources import read_source
from churnops.features.engine_switch import require_readable_sources
from churnops.features.spark_session import start_spark_session

NaivePolicy = Literal["reject", "utc"]
_ROW = "__churnops_row"
_NULLABLE = {
    types.arrow: pd.api.types.pandas_dtype(types.pandas_nullable)
    for types in KIND_TYPES.values()
    if types.pandas_nullable != types.pandas
}
"""Arrow -> the pandas dtype of a column that may miss values, where Arrow's own differs
(integers: ``Int64``, not the float detour)."""


class TimestampError(ValueError):
    """Entity timestamps that cannot be placed on the UTC time axis unambiguously."""


def normalize_timestamps(
    values: pd.Series, *, naive: NaivePolicy = "reject", field: str = EVENT_TS
) -> pd.Series:
    """Timestamps as tz-aware UTC. Offsets are converted; naive values are only accepted when
    the caller declares them UTC (``naive="utc"``), since a naive local time is ambiguous."""
    converted: pd.Series
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        converted = values.dt.tz_convert("UTC")
        return converted
    if pd.api.types.is_datetime64_dtype(values.dtype):
        if naive == "utc":
            converted = values.dt.tz_localize("UTC")
            return converted
        raise TimestampError(
            f"{field}: timestamps have no UTC offset; pass them tz-aware (e.g. "
            "pd.to_datetime(..., utc=True)) or declare them UTC with naive='utc'"
        )
    parsed: list[pd.Timestamp] = []
    bad: list[str] = []
    for raw in values.tolist():
        ts: object
        try:
            ts = pd.Timestamp(raw)
        except (TypeError, ValueError):
            ts = None
        if not isinstance(ts, pd.Timestamp):
            bad.append(repr(raw))
        elif ts.tzinfo is None:
            if naive != "utc":
                bad.append(repr(raw))
            else:
                parsed.append(ts.tz_localize("UTC"))
                continue
        else:
            parsed.append(ts.tz_convert("UTC"))
    if bad:
        raise TimestampError(
            f"{field}: {len(bad)} value(s) without a UTC offset or unparseable, e.g. {', '.join(bad[:3])}; "
            "write them as 2024-01-31T00:00:00Z or with +HH:MM, or declare naive values UTC (naive='utc')"
        )
    return pd.Series(pd.DatetimeIndex(parsed), index=values.index, name=values.name)


def label_entity_frame(
    *, sources_dir: Path, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """The label source as an entity frame (customer_id, event_timestamp, churned).

    When a label was written twice for the same customer and time, the latest ``created`` wins.
    """
    labels = read_source(sources_dir=sources_dir, name=LABEL_SOURCE)
    labels = labels.sort_values(CREATED_TS).drop_duplicates([JOIN_KEY, EVENT_TS], keep="last")
    if start is not None:
        labels = labels[labels[EVENT_TS] >= pd.Timestamp(start)]
    if end is not None:
        labels = labels[labels[EVENT_TS] <= pd.Timestamp(end)]
    return labels.drop(columns=[CREATED_TS]).sort_values([EVENT_TS, JOIN_KEY]).reset_index(drop=True)


def build_training_set(
    *,
    store: FeatureStore,
    entity_df: pd.DataFrame,
    feature_service: str = FEATURE_SERVICE,
    naive: NaivePolicy = "reject",
) -> pd.DataFrame:
    """Join the FeatureService's features as of each entity row's time.

    The result has exactly one row per entity row, in the input order, with every input
    column kept; a customer with no feature row inside a view's TTL gets nulls, never a
    dropped row.
    """
    missing = [c for c in (JOIN_KEY, EVENT_TS) if c not in entity_df.columns]
    if missing:
        raise ValueError(f"entity frame lacks column(s) {missing}; it needs {JOIN_KEY} and {EVENT_TS}")
    if _ROW in entity_df.columns:
        raise ValueError(f"entity frame has a column named {_ROW}, which build_training_set reserves")
    frame = entity_df.reset_index(drop=True)
    # Already tz-aware UTC and string keys: Feast's own entity-frame coercions become no-ops.
    frame[EVENT_TS] = normalize_timestamps(frame[EVENT_TS], naive=naive)
    frame[JOIN_KEY] = frame[JOIN_KEY].astype(str)
    if frame.empty:
        raise ValueError("entity frame is empty: there is nothing to build a training set for")
    service = store.get_feature_service(feature_service)
    clash = [f.name for p in service.feature_view_projections for f in p.features if f.name in frame]
    if clash:
        raise ValueError(f"entity frame column(s) {clash} carry the name of a feature of {feature_service}")
    require_readable_sources(store=store, views=[p.name for p in service.feature_view_projections])
    start_spark_session(store=store)  # on Spark: its JVM's output into a log, not the terminal
    # Feast's offline store does the point-in-time join (and, inside an active MLflow run, logs
    # its lineage tags). The row id lets us put its rows back in input order.
    keyed = frame.assign(**{_ROW: np.arange(len(frame))})
    table = store.get_historical_features(entity_df=keyed, features=service).to_arrow()
    features = _features_in_input_order(table, entity_columns=list(keyed.columns), rows=len(frame))
    return pd.concat([frame, features], axis=1)


def _features_in_input_order(table: pa.Table, *, entity_columns: list[str], rows: int) -> pd.DataFrame:
    """The feature columns of Feast's result, one row per entity row in input order, with the
    declared dtypes (Int64 for integers and flags, float64, object strings with None).

    Works on arrow: reordering and typing there avoids a pandas round trip of the entity
    columns (the caller keeps its own) and the float detour Feast's ``to_df`` takes for
    integer columns with nulls.
    """
    if table.num_rows != rows:
        raise RuntimeError(f"offline store returned {table.num_rows} rows for {rows} entity rows")
    position = np.full(rows, -1, dtype=np.int64)
    position[table.column(_ROW).to_numpy()] = np.arange(rows)
    if (position < 0).any():
        raise RuntimeError("offline store returned some entity rows twice and others not at all")
    names = [c for c in table.column_names if c not in entity_columns]
    ordered = table.select(names).take(pa.array(position))
    kinds = {c.name: c.kind for c in FEATURES}
    columns: dict[str, pd.Series] = {}
    for name in names:
        values = ordered.column(name)
        kind = kinds.get(name)
        if kind is None:
            columns[name] = values.to_pandas()
        else:
            columns[name] = values.cast(KIND_TYPES[kind].arrow).to_pandas(types_mapper=_NULLABLE.get)
    return pd.DataFrame(columns, index=pd.RangeIndex(rows))


__all__ = [
    "NaivePolicy",
    "TimestampError",
    "build_training_set",
    "label_entity_frame",
    "normalize_timestamps",
]
