"""One writer at a time on a file-backed store of the home (the embedded default).

Some stores of the embedded home are files that their library writes without any
cross-process coordination: Evidently's local workspace (JSON files; two drift reports at once
both create the project, or read a file the other is writing). :func:`home_lock` serializes
writers of one such store with ``flock`` on a sidecar file next to it (``<target>.lock``,
:func:`lock_path`); the kernel releases it if the process dies. A writer that has to wait says
so once through ``on_wait`` (or the log), then waits up to ``timeout_s``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_WAIT_S = 600.0
LOCK_SUFFIX = ".lock"

_log = logging.getLogger(__name__)


class HomeBusyError(TimeoutError):
    """Another writer held the lock for longer than the caller was willing to wait."""


def lock_path(target: Path) -> Path:
    """The sidecar lock file of ``target`` (a file or directory of the home)."""
    return target.with_name(f"{target.name}{LOCK_SUFFIX}")


@contextmanager
def home_lock(
    target: Path,
    *,
    what: str,
    timeout_s: float = DEFAULT_WAIT_S,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the exclusive lock of ``target`` (``what`` names the writer, for the waiting message)."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"waiting for another {what} on {target} to finish (lock {path})..."
            if on_wait is not None:
                on_wait(message)
            else:
                _log.warning(message)
            deadline = time.monotonic() + timeout_s
            delay = 0.01
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise HomeBusyError(
                            f"another {what} held {path} for more than {timeout_s:.0f} s; "
                            "try again when it has finished"
                        ) from None
                    time.sleep(delay)  # back off while another process holds the lock
                    delay = min(delay * 2, 0.25)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
