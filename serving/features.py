"""Online features by customer id, with a hard deadline and a per-row status.

Two readers with one async interface (``OnlineReader``):

- ``FeastReader`` (here): Feast's ``get_online_features`` via
  ``churnops.features.online.fetch_online`` (any online store; run in a worker thread, bounded
  by a deadline).
- ``RedisReader``: Feast's Redis layout read directly, a few ms for 100 ids against Feast's
  ~40 ms. It lives in the fast path (``churnops.features.fastpath.reader``, with the codec the
  direct writer uses, and with ``FeaturesUnavailable`` and ``OnlineReader``, re-exported here);
  ``serving.runtime.make_reader`` gives it a ``FeastReader`` to fall back to when its warm-up
  self-check disagrees with Feast.

Both judge staleness against the view TTL (Feast does not enforce TTL online). A store that is
down or slower than the deadline raises ``FeaturesUnavailable``; the service answers 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from churnops.contracts.clock import wall_clock
from churnops.contracts.materialization import completion_problem
from churnops.contracts.online import OnlineRow
from churnops.features.fastpath.reader import (
    FeaturesUnavailable,
    MarkersUnsupported,
    OnlineReader,
    read_markers,
)
from churnops.features.online import ServiceLayout, fetch_online

logger = logging.getLogger(__name__)


class FeastReader:
    """``store.get_online_features`` in a thread, bounded by ``deadline_s``."""

    def __init__(
        self,
        *,
        store: Any,
        layout: ServiceLayout,
        deadline_s: float,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self._store = store
        self._layout = layout
        self._deadline = deadline_s
        self._clock = clock

    async def fetch(self, customer_ids: Sequence[str]) -> list[OnlineRow]:
        def read() -> list[OnlineRow]:
            return fetch_online(
                store=self._store, layout=self._layout, customer_ids=customer_ids, now=self._clock()
            )

        try:
            return await asyncio.wait_for(asyncio.to_thread(read), timeout=self._deadline)
        except TimeoutError as error:
            raise FeaturesUnavailable(f"online store slower than {self._deadline * 1000:.0f} ms") from error
        except (ConnectionError, OSError) as error:
            raise FeaturesUnavailable(f"online store unreachable: {type(error).__name__}") from error
        except Exception as error:
            if type(error).__module__.startswith("redis"):
                raise FeaturesUnavailable(f"online store error: {type(error).__name__}") from error
            raise

    def warm_up(self) -> None:
        fetch_online(store=self._store, layout=self._layout, customer_ids=["__churnops_warm_up__"])

    async def problem(self) -> str | None:
        """Not ready while a view of the service lacks a finished completion marker (an embedded
        store has no "down" state; a failing read answers 503 itself)."""
        views = list(self._layout.ttl)

        def check() -> str | None:
            try:
                markers = read_markers(store=self._store, views=views)
            except MarkersUnsupported as why:
                logger.debug("readiness: completion not checked (%s)", why)
                return None
            return completion_problem(views=views, markers=markers)

        try:
            return await asyncio.wait_for(asyncio.to_thread(check), timeout=max(self._deadline * 4, 1.0))
        except TimeoutError:
            return f"online store slower than {self._deadline * 4000:.0f} ms reading the completion markers"
        except Exception as error:  # the store's own client errors (redis, sqlite3): not ready, said why
            logger.warning("readiness: completion markers unreadable: %s", error)
            return f"online store unreadable ({type(error).__name__}: {error})"

    async def aclose(self) -> None:
        return None


__all__ = ["FeastReader", "FeaturesUnavailable", "OnlineReader"]
