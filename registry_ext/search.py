"""Search over the ``models`` table: name (exact or ``*`` pattern), version, stage, tags.

Indexed for thousands of versions: ``(name, version)`` is unique, ``(name, stage)`` is indexed,
and on PostgreSQL tag filters are a JSONB containment (``tags @> {...}``) served by a GIN index.
On SQLite tag filters use ``json_extract`` over the rows the name/stage index leaves.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from registry_ext.records import SearchQuery
from registry_ext.store import record_select
from registry_ext.tables import models


def _like_pattern(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def search_query(query: SearchQuery, *, dialect: str) -> sa.Select[Any]:
    """The SELECT for ``query`` (newest version first within each model)."""
    select = record_select()
    if query.name is not None:
        if "*" in query.name:
            select = select.where(models.c.name.like(_like_pattern(query.name), escape="\\"))
        else:
            select = select.where(models.c.name == query.name)
    if query.version is not None:
        select = select.where(models.c.version == query.version)
    if query.stage is not None:
        select = select.where(models.c.stage == query.stage.value)
    if query.tags:
        if dialect == "postgresql":
            select = select.where(sa.type_coerce(models.c.tags, postgresql.JSONB).contains(dict(query.tags)))
        else:
            for key, value in query.tags.items():
                path = '$."' + key.replace('"', '\\"') + '"'
                select = select.where(sa.func.json_extract(models.c.tags, path) == value)
    select = select.order_by(models.c.name, models.c.version.desc())
    if query.limit is not None:
        select = select.limit(query.limit)
    return select
