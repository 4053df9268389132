"""The Feast source parquet files: their schema and layout (one directory of part files per
source), with the one reader and writer. Shared by ingestion and generation (writers), the Feast
definitions and training sets, and monitoring's label reader."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.contracts.columns import (
    CREATED_TS,
    EVENT_TS,
    JOIN_KEY,
    LABEL,
    LABEL_SOURCE,
    TS_TYPE,
    VIEWS,
    arrow_type,
    view_columns,
)


def source_schema(name: str) -> pa.Schema:
    """The arrow schema of one source: key, timestamps, then its features (or the label)."""
    fields = [pa.field(JOIN_KEY, pa.string()), pa.field(EVENT_TS, TS_TYPE), pa.field(CREATED_TS, TS_TYPE)]
    if name == LABEL_SOURCE:
        fields.append(pa.field(LABEL, pa.int64()))
    else:
        fields.extend(pa.field(c.name, arrow_type(c)) for c in view_columns(name))  # type: ignore[arg-type]
    return pa.schema(fields)


def source_glob(sources_dir: Path, name: str) -> str:
    """The absolute glob a Feast FileSource reads (duckdb reads every part file)."""
    return str((sources_dir / name).resolve() / "*.parquet")


def write_sources(
    *, frame: pd.DataFrame, sources_dir: Path, part: str, replace_all: bool = False, with_labels: bool = True
) -> dict[str, Path]:
    """Split one wide frame (key, timestamps, all features, label) into the Feast sources.

    Each source gets the part file ``<part>.parquet``; writing the same part again replaces it,
    so re-running an ingestion of the same snapshot is idempotent. ``replace_all`` removes the
    other parts first (a generated dataset replaces whatever was there). ``with_labels=False``
    writes the feature sources only (a scoring snapshot without outcomes).
    """
    written: dict[str, Path] = {}
    for name in (*VIEWS, LABEL_SOURCE) if with_labels else VIEWS:
        schema = source_schema(name)
        directory = sources_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        if replace_all:
            for old in directory.glob("*.parquet"):
                old.unlink()
        table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        path = directory / f"{part}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
        written[name] = path
    return written


def read_source(*, sources_dir: Path, name: str) -> pd.DataFrame:
    """All part files of one source as one frame (empty frame with the schema if none)."""
    schema = source_schema(name)
    files = sorted((sources_dir / name).glob("*.parquet"))
    table = schema.empty_table() if not files else pq.read_table([str(f) for f in files], schema=schema)
    frame: pd.DataFrame = table.to_pandas()
    return frame
