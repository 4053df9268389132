"""Where Dagster keeps its runs, schedules and sensor state: ``DAGSTER_HOME``, by default
``<CHURNOPS_HOME>/dagster``, with a ``dagster.yaml`` whose run queue admits one loop run at a
time (tag ``churnops/loop``), so a backfill of a month replays its days in order.

Without ``DAGSTER_HOME`` Dagster keeps runs in a temporary directory: runs started with ``dagster
job execute`` never show in the UI and schedule and sensor state is lost on restart.
"""

from __future__ import annotations

import os
from pathlib import Path

DAGSTER_HOME_ENV = "DAGSTER_HOME"
LOOP_TAG = "churnops/loop"

INSTANCE_YAML = f"""\
# Written by `churnops loop ui` when missing; edit freely (it is not rewritten).
# One loop run at a time: the queue admits runs in the order they were submitted, so a backfill
# of N days replays them oldest first, each day after the one before.
concurrency:
  runs:
    tag_concurrency_limits:
      - key: "{LOOP_TAG}"
        limit: 1
telemetry:
  enabled: false
"""


def dagster_home(*, churnops_home: Path, environ: dict[str, str] | None = None) -> Path:
    """``DAGSTER_HOME`` when set, else ``<churnops_home>/dagster`` (absolute: Dagster requires it)."""
    env = os.environ if environ is None else environ
    chosen = env.get(DAGSTER_HOME_ENV)
    return Path(chosen).resolve() if chosen else (churnops_home / "dagster").resolve()


def prepare_dagster_home(path: Path) -> Path:
    """Create ``path`` and its ``dagster.yaml`` (only when missing); returns the yaml's path."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML, encoding="utf-8")
    return config
