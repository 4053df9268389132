"""Helpers for tests that need a real Feast repo with hand-made source data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.contracts.columns import CREATED_TS, EVENT_TS, JOIN_KEY, VIEWS, view_columns
from churnops.contracts.sources import source_schema
from churnops.features.store import apply
from churnops.settings import Settings
from churnops.wiring import feast_definitions, feature_store


def random_view_rows(
    *, rng: np.random.Generator, view: str, ids: list[str], times: pd.DatetimeIndex
) -> pd.DataFrame:
    """Rows for one view with random (but valid) feature values at the given ids/times."""
    n = len(ids)
    frame: dict[str, object] = {JOIN_KEY: ids, EVENT_TS: times}
    frame[CREATED_TS] = times + pd.to_timedelta(rng.integers(0, 3600, n), unit="s")
    for col in view_columns(view):  # type: ignore[arg-type]
        if col.kind == "category":
            frame[col.name] = rng.choice(list(col.categories), n)
        elif col.kind == "flag":
            frame[col.name] = rng.integers(0, 2, n)
        elif col.kind == "int":
            frame[col.name] = rng.integers(0, 72, n)
        else:
            frame[col.name] = np.round(rng.uniform(0, 120, n), 2)
    return pd.DataFrame(frame)


def seed_random_histories(
    *,
    settings: Settings,
    ids: list[str],
    seed: int,
    start: pd.Timestamp,
    span: pd.Timedelta,
    max_rows: int,
    unit: str = "min",
) -> None:
    """Per view, 0..max_rows-1 random rows per id at random times in [start, start + span),
    in whole ``unit``s (``us`` gives sub-second event times), over two part files."""
    rng = np.random.default_rng(seed)
    steps = int(span / pd.Timedelta(1, unit=unit))
    for view in VIEWS:
        row_ids = np.repeat(ids, rng.integers(0, max_rows, len(ids))).tolist()
        times = pd.DatetimeIndex(start + pd.to_timedelta(rng.integers(0, steps, len(row_ids)), unit=unit))
        frame = random_view_rows(rng=rng, view=view, ids=row_ids, times=times)
        write_view(settings=settings, view=view, frame=frame, parts=2)


def write_view(*, settings: Settings, view: str, frame: pd.DataFrame, parts: int = 1) -> None:
    """Replace a view's source with ``frame``, split over ``parts`` part files (order kept)."""
    directory = settings.source_dir(view)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.parquet"):
        old.unlink()
    schema = source_schema(view)
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        table = pa.Table.from_pandas(frame.iloc[chunk][schema.names], schema=schema, preserve_index=False)
        pq.write_table(table, directory / f"part-{i}.parquet")


def empty_sources(settings: Settings) -> None:
    """Every source present with zero rows, so the repo can be applied before data arrives."""
    for name in (*VIEWS, "labels"):
        directory = settings.source_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(source_schema(name).empty_table(), directory / "empty.parquet")


def applied_store(settings: Settings):  # type: ignore[no-untyped-def]
    store = feature_store(settings)
    apply(store=store, defs=feast_definitions(settings))
    return store


def source_dir(settings: Settings, name: str) -> Path:
    return settings.source_dir(name)
