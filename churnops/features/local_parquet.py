"""Where a feature view's rows live when they are a local parquet path our own readers can scan
(the direct Redis writer and the online-store pruning read them with duckdb, as Feast does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NotLocalParquet(ValueError):
    """The view's source is not one local parquet path with a single entity key."""


def local_parquet_path(*, view: Any, repo_path: str | Path) -> str:
    """The absolute parquet path (or glob) of ``view``'s batch source; :class:`NotLocalParquet`
    says why not (another source type, field mappings, a compound key, a remote URL)."""
    from feast import FileSource
    from feast.data_format import ParquetFormat

    source = view.batch_source
    if not isinstance(source, FileSource) or not isinstance(source.file_format, ParquetFormat | None):
        raise NotLocalParquet(f"{view.name}: source is not a parquet FileSource")
    if source.field_mapping or len(view.entity_columns) != 1:
        raise NotLocalParquet(f"{view.name}: field mappings or compound entity keys")
    path = str(source.path)
    if "://" in path:
        raise NotLocalParquet(f"{view.name}: remote source {path}")
    if not Path(path).is_absolute():
        path = str(Path(str(repo_path)) / path)
    return path
