"""What the serving request path needs to know, built from Settings by ``churnops.wiring``.

The field names are the Settings fields they come from, so a value is findable by the
variable that sets it (``serving_max_ids`` <- ``CHURNOPS_SERVING_MAX_IDS``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from pydantic import SecretStr


@dataclass(frozen=True)
class ServingConfig:
    project: str
    feature_service: str
    redis_url: str | None
    redis_timeout_ms: int
    serving_online_reader: Literal["auto", "feast", "redis"]
    serving_api_key: SecretStr | None
    serving_webhook_secret: SecretStr | None
    serving_max_ids: int
    serving_max_rows: int
    serving_max_body_bytes: int
    serving_body_timeout_seconds: float
    serving_max_pending_bodies: int
    serving_poll_seconds: float
    now: datetime | None
    """A pinned clock (CHURNOPS_NOW) for tests and replays: freshness and log times use it."""

    def clock(self) -> datetime:
        from churnops.contracts.clock import current_time

        return current_time(self.now)

    @classmethod
    def from_values(cls, source: Any) -> ServingConfig:
        """The fields of ``source`` (a Settings) that have the same names."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})
