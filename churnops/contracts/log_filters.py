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


KNOWN_WARNINGS = (
    # BentoML 1.4's IO models on pydantic 2.11+ (one per API, on every start)
    "The `__get_pydantic_core_schema__` method of the `BaseModel` class is deprecated",
    # MLflow's SQLAlchemy tracking store on SQLAlchemy 2.1
    "The ``noload`` loader strategy is deprecated",
    # ibis on duckdb 1.4 (Feast's DuckDB offline store)
    r"fetch_arrow_table\(\) is deprecated",
    # tornado under BentoML's process manager (circus)
    "add_callback_from_signal is deprecated",
    # Evidently 0.7's imports: numpy 2's renamed core, litestar 2.23's renamed dependency API
    "numpy.core is deprecated",
    "Call to deprecated function 'Dependency'",
    "Use of deprecated class 'DependencyKwarg'",
)
"""Deprecation warnings inside libraries, about their own internals: nothing a user can act on."""


def quiet_known_warnings() -> None:
    """Ignore :data:`KNOWN_WARNINGS` (entry points only; call after importing feast).

    Feast's import puts ``simplefilter("once", DeprecationWarning)`` in front of every filter,
    so libraries' deprecation warnings, hidden by Python's defaults, reach the terminal.
    """
    import warnings

    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
