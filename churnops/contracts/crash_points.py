"""A test hook: kill the process at a named commit point, to test crash consistency.

``CHURNOPS_CRASH_AT=<point>`` makes :func:`crash_point` end the process with ``os._exit(137)``
(what ``kill -9`` looks like to a parent) when the running code reaches ``<point>``: no
``finally``, no ``atexit``, no flush, no rollback, exactly like a power cut or the OOM killer.
Unset (always, outside tests), it costs one environment lookup. Points are named
``<component>.<step>``: ``registry.*`` (registry_ext: register, promote, rollback, reconcile)
and ``retrain.*`` (the retrain state machine). Nothing else belongs here.
"""

from __future__ import annotations

import os

CRASH_ENV = "CHURNOPS_CRASH_AT"
CRASH_EXIT_CODE = 137
"""128 + SIGKILL: the exit status a shell reports for a process killed with ``kill -9``."""


def crash_point(point: str) -> None:
    """Test hook: exit at once with status 137 when ``CHURNOPS_CRASH_AT`` names ``point``."""
    if os.environ.get(CRASH_ENV) == point:
        os._exit(CRASH_EXIT_CODE)
