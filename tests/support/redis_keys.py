"""Feast's Redis keys of one project, so tests sharing a Redis db clean up only their own.

Feast keys an entity's hash as ``serialize_entity_key(...) + project`` (no separator;
``feast.infra.online_stores.helpers._redis_key``) and scans ``<prefix>*<project>`` itself to
delete a view. A suffix match is only unambiguous when no project name ends with another one, so
test projects are unique random names (``t<uuid hex>``), never a word like ``churnops``.
"""

from __future__ import annotations

import re
from typing import Any

_GLOB = re.compile(rb"([\\*?\[\]])")


def project_pattern(project: str) -> bytes:
    """The SCAN MATCH pattern of every key Feast writes for ``project`` (glob characters escaped)."""
    if not project:
        raise ValueError("project is empty; pass the Feast project name (Settings.project)")
    return b"*" + _GLOB.sub(rb"\\\1", project.encode("utf-8"))


def project_keys(*, client: Any, project: str) -> list[bytes]:
    """Every key of ``project`` in the client's db (SCAN, never KEYS)."""
    return list(client.scan_iter(match=project_pattern(project), count=1000))


def delete_project_keys(*, client: Any, project: str) -> int:
    """Delete ``project``'s keys (Feast's and the completion markers) and nothing else; returns
    how many went."""
    from churnops.contracts.materialization import redis_marker_pattern

    deleted = 0
    for pattern in (project_pattern(project), redis_marker_pattern(project=project)):
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(client.unlink(*batch))
    return deleted
