"""Scoring every customer active at a time T with point-in-time features from the offline store.

"Active at T" = present in the newest ``account`` snapshot at or before T (the snapshot's event
time), provided that snapshot is inside the account view's TTL: the sources are snapshots of the
customer base, so a customer who churned is absent from the next one. Every active customer
gets a row: ``ok`` with a probability, or ``missing_features`` when a view has no value inside
its TTL at T (no score, as serving does). The result is ranked by probability (rank 1 = the
most likely to churn; decile 1 = the top tenth of the scored rows) and every row is appended to
the prediction log with ``endpoint=batch`` and ``ts=T``, so a backfill at T is a prediction made
at T and lines up with the labels of that snapshot (``feature_ts``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnops.contracts.columns import EVENT_TS, JOIN_KEY, SCORE, column, feature_names
from churnops.contracts.model_input import NULLABLE_INTEGER, model_frame
from churnops.contracts.online import RowStatus, complete_rows
from churnops.contracts.prediction_log import (
    BATCH_ENDPOINT,
    COLUMNS,
    CUSTOMER_ID,
    ENDPOINT,
    FEATURE_SERVICE_NAME,
    FEATURE_TS,
    MODEL_NAME,
    MODEL_VERSION,
    REQUEST_ID,
    STATUS,
    TS,
    Sink,
    batch_request_id,
    log_schema,
)

ACTIVITY_VIEW = "account"
CHUNK_ROWS = 200_000


class BatchScoringError(ValueError):
    """Nothing can be scored as asked (no customers at T, no model); the message says what to do."""


@dataclass(frozen=True)
class ScoredModel:
    """The model to score with: its registry name and version, and the verified estimator."""

    name: str
    version: str
    feature_service: str
    estimator: Any


@dataclass(frozen=True)
class BatchScores:
    """What one batch run produced; ``frame`` is ranked (see the module docstring)."""

    as_of: datetime
    model_name: str
    model_version: str
    rows: int
    scored: int
    statuses: dict[str, int]
    logged: int
    request_id: str
    frame: pd.DataFrame

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "rows": self.rows,
            "scored": self.scored,
            "statuses": self.statuses,
            "logged": self.logged,
            "request_id": self.request_id,
        }


def active_customers(*, sources_dir: Path, as_of: datetime, ttl: timedelta) -> pd.DataFrame:
    """``customer_id`` and ``feature_ts`` of the customers in the newest account snapshot <= T."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    files = sorted((sources_dir / ACTIVITY_VIEW).glob("*.parquet"))
    if not files:
        return pd.DataFrame(
            {JOIN_KEY: pd.Series(dtype=str), FEATURE_TS: pd.Series(dtype="datetime64[us, UTC]")}
        )
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    when = pd.Timestamp(as_of).tz_convert("UTC")
    table = dataset.to_table(
        columns=[JOIN_KEY, EVENT_TS],
        filter=(pc.field(EVENT_TS) <= when.to_pydatetime())
        & (pc.field(EVENT_TS) >= (when - ttl).to_pydatetime()),
    )
    if table.num_rows:
        table = table.filter(pc.equal(table.column(EVENT_TS), pc.max(table.column(EVENT_TS))))
    newest = table.group_by(JOIN_KEY).aggregate([(EVENT_TS, "max")])
    frame: pd.DataFrame = newest.to_pandas().rename(columns={f"{EVENT_TS}_max": FEATURE_TS})
    return frame.sort_values(JOIN_KEY, kind="stable").reset_index(drop=True)


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Rank 1 = highest probability (ties by customer id); deciles 1..10 over the scored rows."""
    ordered = frame.sort_values(
        ["churn_probability", JOIN_KEY], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    scored = ordered["churn_probability"].notna().to_numpy()
    n = int(scored.sum())
    ranks = np.arange(1, len(ordered) + 1, dtype="int64")
    deciles = np.where(scored, np.minimum(10, (ranks - 1) * 10 // max(n, 1) + 1), 0)
    ordered["rank"] = pd.array(np.where(scored, ranks, 0), dtype="Int64").astype("Int64")
    ordered.loc[~scored, "rank"] = pd.NA
    ordered["decile"] = pd.array(deciles, dtype="Int64")
    ordered.loc[~scored, "decile"] = pd.NA
    return ordered


def score_active_customers(
    *,
    store: Any,
    model: ScoredModel,
    sources_dir: Path,
    as_of: datetime,
    ttl: timedelta,
    sink: Sink | None,
) -> BatchScores:
    """Score every customer active at ``as_of`` and log each row (``sink(day, columns)``)."""
    from churnops.features.training_set import build_training_set

    active = active_customers(sources_dir=sources_dir, as_of=as_of, ttl=ttl)
    if active.empty:
        raise BatchScoringError(
            f"no customer has an {ACTIVITY_VIEW!r} snapshot in "
            f"[{(as_of - ttl).isoformat()}, {as_of.isoformat()}]: "
            "choose an --as-of inside the data (`churnops data generate` / `data ingest --as-of`)"
        )
    entity = pd.DataFrame({JOIN_KEY: active[JOIN_KEY], EVENT_TS: pd.Timestamp(as_of).tz_convert("UTC")})
    features = build_training_set(store=store, entity_df=entity, feature_service=model.feature_service)
    names = [n for n in feature_names() if n in features.columns]
    columns = [column(n) for n in names]
    usable = complete_rows(features[names])
    probability = np.full(len(features), np.nan)
    rows = np.flatnonzero(usable)
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows[start : start + CHUNK_ROWS]
        x = model_frame(features.iloc[part], columns=columns)  # the one builder training fitted on
        probability[part] = model.estimator.predict_proba(x)[:, 1]
    status = np.where(usable, RowStatus.OK.value, RowStatus.MISSING_FEATURES.value)
    out = pd.DataFrame(
        {
            JOIN_KEY: features[JOIN_KEY].to_numpy(),
            "churn_probability": pd.array(np.where(usable, probability, np.nan), dtype="Float64"),
            STATUS: status,
            MODEL_VERSION: model.version,
            FEATURE_TS: active[FEATURE_TS].array,  # stays datetime64[us, UTC] (no object array)
        }
    )
    out.loc[~usable, "churn_probability"] = pd.NA
    request_id = batch_request_id(model_name=model.name, model_version=model.version, as_of=as_of)
    logged = 0
    if sink is not None:
        logged = _log(
            sink=sink,
            frame=features,
            names=names,
            scores=out,
            model=model,
            as_of=as_of,
            request_id=request_id,
        )
    counts = Counter(status.tolist())
    return BatchScores(
        as_of=as_of,
        model_name=model.name,
        model_version=model.version,
        rows=len(out),
        scored=int(usable.sum()),
        statuses=dict(sorted(counts.items())),
        logged=logged,
        request_id=request_id,
        frame=rank(out),
    )


def _log(
    *,
    sink: Sink,
    frame: pd.DataFrame,
    names: list[str],
    scores: pd.DataFrame,
    model: ScoredModel,
    as_of: datetime,
    request_id: str,
) -> int:
    """The prediction-log columns of every row (Arrow arrays), written as one partition (the as-of date)."""
    import pyarrow as pa

    n = len(frame)
    when = pd.Timestamp(as_of).tz_convert("UTC")
    schema = log_schema()

    def constant(value: Any, field: str) -> pa.Array:
        return pa.array([value] * n, type=schema.field(field).type)

    def typed(values: Any, field: str) -> pa.Array:
        return pa.array(values, type=schema.field(field).type, from_pandas=True)

    columns: dict[str, Any] = {
        REQUEST_ID: constant(request_id, REQUEST_ID),
        TS: constant(when.to_pydatetime(), TS),
        ENDPOINT: constant(BATCH_ENDPOINT, ENDPOINT),
        CUSTOMER_ID: typed(frame[JOIN_KEY].astype(str), CUSTOMER_ID),
        MODEL_NAME: constant(model.name, MODEL_NAME),
        MODEL_VERSION: constant(model.version, MODEL_VERSION),
        FEATURE_SERVICE_NAME: constant(model.feature_service, FEATURE_SERVICE_NAME),
        SCORE: typed(scores["churn_probability"].astype("float64"), SCORE),
        STATUS: typed(scores[STATUS], STATUS),
        FEATURE_TS: typed(pd.to_datetime(scores[FEATURE_TS], utc=True), FEATURE_TS),
    }
    for name in COLUMNS:
        if name not in columns:
            field = schema.field(name)
            if name in frame.columns:
                values = frame[name]
                if pa.types.is_integer(field.type):
                    values = values.astype(pd.api.types.pandas_dtype(NULLABLE_INTEGER))
                columns[name] = pa.array(values, type=field.type, from_pandas=True)
            else:
                columns[name] = pa.nulls(n, type=field.type)
    sink(f"{when:%Y-%m-%d}", {name: columns[name] for name in COLUMNS}, batch_id=request_id)
    return n
