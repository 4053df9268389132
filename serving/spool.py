"""Prediction-log rows the sink could not take, kept on local disk until it takes them again.

A failed write (the PostgreSQL table unreachable, a parquet write error) must not lose rows
silently: the rows are written to ``<spool>/date=<day>/part-*.parquet`` (the log's own layout),
and every later flush first replays the spool, oldest first, deleting each file only once the
sink accepted it. Rows are counted as dropped only when the spool itself cannot be written
(``put`` raises; the caller counts and logs). Problems are logged with their exception at most
once per interval, with counts, never once per row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from churnops.contracts.prediction_log import PARTITION, log_schema, write_columns

logger = logging.getLogger(__name__)
Columns = dict[str, Any]


class ThrottledWarning:
    """``warn(message)`` logs at most once per ``interval_s`` (the rest are counted and summarized)."""

    def __init__(self, *, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last = -float("inf")
        self._suppressed = 0
        self._lock = threading.Lock()

    def warn(self, message: str, *, error: BaseException | None = None) -> bool:
        """Log ``message`` (with ``error``'s traceback) unless one was logged within the interval."""
        with self._lock:
            now = self._clock()
            if now - self._last < self._interval:
                self._suppressed += 1
                return False
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        logger.warning(
            "%s%s",
            message,
            f" ({suppressed} similar messages suppressed)" if suppressed else "",
            exc_info=error,
        )
        return True


class Spool:
    """Parquet part files of refused rows under ``directory``, replayed in order."""

    def __init__(self, directory: Path, *, warning: ThrottledWarning | None = None) -> None:
        self.directory = directory
        self._warning = warning or ThrottledWarning()

    def put(self, day: str, columns: Columns) -> None:
        """Keep the rows; raises when even the local disk refuses them (the caller counts them lost)."""
        write_columns(directory=self.directory, day=day, columns=columns)

    def files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{PARTITION}=*/part-*.parquet"))

    def pending_rows(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files())

    def replay(self, sink: Callable[[str, Columns], object]) -> int:
        """Hand spooled files to ``sink`` oldest first; stops at the first refusal. Returns rows replayed."""
        import pyarrow.parquet as pq

        replayed = 0
        files = self.files()
        for done, path in enumerate(files):
            try:
                table = pq.read_table(path, schema=log_schema())
            except Exception as error:  # unreadable (a torn write): set aside for a person, keep replaying
                path.rename(path.with_name(path.name + ".unreadable"))
                logger.warning(
                    "spooled prediction-log file %s is unreadable; kept as *.unreadable", path, exc_info=error
                )
                continue
            day = path.parent.name.split("=", 1)[1]
            try:
                sink(day, {name: table.column(name) for name in table.column_names})
            except Exception as error:  # the sink is still down: the file stays, retried next flush
                self._warning.warn(
                    f"prediction log sink refused the spooled rows of {path} ({error}); "
                    f"{len(files) - done} spooled files wait in {self.directory}",
                    error=error,
                )
                break
            path.unlink()
            replayed += table.num_rows
        return replayed
