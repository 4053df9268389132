"""Drop a library's log records that are known to be false or empty for ChurnOps, by logger and
message prefix only (every other record of that logger still gets through).

Installing a filter is idempotent (one per logger and prefix set).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence


class DropMessages(logging.Filter):
    """Rejects the records of one logger whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def drop_messages(logger: str, prefixes: Sequence[str]) -> None:
    """Install :class:`DropMessages` on ``logger`` unless the same filter is already there."""
    target = logging.getLogger(logger)
    wanted = tuple(prefixes)
    if any(isinstance(f, DropMessages) and f.prefixes == wanted for f in target.filters):
        return
    target.addFilter(DropMessages(wanted))
