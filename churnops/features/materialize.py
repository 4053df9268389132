"""Filling the online store so that it equals the offline point-in-time view at a given time.

Two writers load the same rows:

- ``feast``: Feast's own ``FeatureStore.materialize`` (any online store).
- ``direct``: for Feast's plain Redis online store only: exactly the bytes Feast's Redis store
  writes, from rows DuckDB selects, about 8x faster (``churnops.features.fastpath.writer``).

The fast path (``churnops.features.fastpath``) holds the direct writer, the layout codec it
shares with serving's direct reader, the pruner and the completion markers. ``writer="auto"``
(the default) takes ``direct`` when the online store is plain Redis and the installed Feast is
the version that codec was verified against, ``feast`` otherwise (logging why); a view the
direct writer cannot handle (not a parquet FileSource, field mappings, a Feast encoding that no
longer matches) goes through Feast.
"""

from __future__ import annotations

import contextlib
import io
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from feast import FeatureStore

from churnops.contracts.clock import wall_clock
from churnops.features.engine_switch import require_readable_sources
from churnops.features.fastpath.feast_private import feast_version_problem
from churnops.features.fastpath.markers import MarkersUnsupported, mark_finished, mark_started
from churnops.features.fastpath.pruner import PrunePlan, PruneUnsupported, apply_prune, plan_prune
from churnops.features.fastpath.writer import DirectRedisWriter, DirectWriterUnsupported, writer_store_problem
from churnops.features.spark_session import start_spark_session

Writer = Literal["auto", "feast", "direct"]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaterializeResult:
    """What was loaded: the cut-off time and, per view, the window read, the writer used and how
    many customers' values were removed (None: this store cannot be pruned, see the log)."""

    end: datetime
    windows: dict[str, tuple[datetime, datetime]]
    writers: dict[str, str] = field(default_factory=dict)
    removed: dict[str, int | None] = field(default_factory=dict)
    run_id: str | None = None
    marked: bool = False  # completion markers written (churnops.contracts.materialization)


class RemovalRefused(RuntimeError):
    """The run would remove more than the allowed share of a view's customers from the online
    store; nothing was written or removed. ``plans``: what each view's pruning would remove."""

    def __init__(self, *, end: datetime, plans: list[PrunePlan], max_share: float) -> None:
        self.end = end
        self.plans = plans
        self.max_share = max_share
        over = [p for p in plans if p.share > max_share]
        worst = max(over, key=lambda p: p.share)
        super().__init__(
            f"materializing as of {end:%Y-%m-%dT%H:%M:%SZ} would remove {worst.removed:,} of "
            f"{worst.stored:,} customers ({worst.share:.0%}) from view {worst.view} "
            f"({worst.outside_window:,} have no source row in its window, {worst.newer_than_end:,} hold "
            f"values newer than the end), more than the allowed {max_share:.0%}"
        )

    @property
    def removed(self) -> int:
        """The most customers one view would lose."""
        return max(p.removed for p in self.plans)


def latest_event_time(*, sources_dir: Path, views: list[str]) -> datetime | None:
    """The newest event timestamp over the given sources (the natural materialization end).

    Reads only the timestamp column of each part file, not the features.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    newest: datetime | None = None
    for view in views:
        for part in sorted((sources_dir / view).glob("*.parquet")):
            column = pq.read_table(part, columns=["event_timestamp"]).column(0)
            value = pc.max(column).as_py()
            if value is not None and (newest is None or value > newest):
                newest = value
    return newest


def materialize(
    *,
    store: FeatureStore,
    end: datetime,
    views: list[str] | None = None,
    writer: Writer = "auto",
    feast_version: str | None = None,
    on_view: Callable[[str], None] | None = None,
    max_removed_share: float | None = None,
    run_id: str | None = None,
) -> MaterializeResult:
    """Load each view's latest row per customer with event time in [end - TTL, end].

    A window of exactly the view's TTL makes the online store equal to the offline
    point-in-time answer at ``end``: a customer whose last row is older than the TTL is not
    loaded (offline gives nulls for it too), and before each view is written its online values
    that the window does not hold (customers gone from the sources, values newer than ``end``)
    are deleted (``churnops.features.fastpath.pruner``; counted in ``removed``). Feast's
    ``materialize_incremental`` starts at now - TTL instead, which loads nothing for historical
    data.

    ``writer``: ``feast`` (Feast's materialize), ``direct`` (Feast's Redis layout written
    directly; plain Redis online store only, else ``DirectWriterUnsupported``) or ``auto``
    (direct on plain Redis when the installed Feast is ``feast_private.VERIFIED_FEAST_VERSION``,
    Feast otherwise, with one log line saying why). ``feast_version``: the version ``auto``
    judges (default: the installed one). ``on_view``: called with each view's name once it is
    loaded (a progress hook for entry points).

    Safety: what every view's pruning would remove is counted first; when a view would lose more
    than ``max_removed_share`` of the customers it holds, ``RemovalRefused`` is raised before
    anything is removed or written (None: no limit). Completeness: each view gets a completion
    marker (``churnops.features.fastpath.markers``): ``started`` by ``run_id`` (default: a new one)
    before it is touched, ``finished`` once all its rows are written, so serving can tell a
    store that was filled completely from one a killed run left half way.
    """
    if end.tzinfo is None:
        raise ValueError("materialize end time must be tz-aware (UTC)")
    if writer not in ("auto", "feast", "direct"):
        raise ValueError(f"unknown materialize writer {writer!r}: use auto, feast or direct")
    end = end.astimezone(UTC)
    store_problem = writer_store_problem(store=store)
    if writer == "direct" and store_problem:
        raise DirectWriterUnsupported(store_problem)
    if writer == "auto" and store_problem and _is_redis(store):
        # Redis Cluster, or a Spark offline store: Feast's own path (its Spark job, its
        # cluster client) loads it, said once.
        _log.warning("materialize: direct Redis writer not used (%s); using Feast", store_problem)
    if writer == "auto" and not store_problem:
        version_problem = feast_version_problem(installed=feast_version)
        if version_problem:
            _log.warning("materialize: direct Redis writer not used (%s); using Feast", version_problem)
            writer = "feast"
    run_id = run_id or uuid.uuid4().hex
    selected = []
    for view in store.list_feature_views():
        if views is not None and view.name not in views:
            continue
        ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else timedelta(days=3650)
        # Feast's window is [start, end]; offline PIT keeps rows with ts >= end - ttl too.
        selected.append((view, end - ttl))
    # Sources applied under the other offline store: refused with the fix before anything is touched.
    require_readable_sources(store=store, views=[view.name for view, _ in selected])
    # Count what pruning would remove for every view before anything is removed or written.
    plans: dict[str, PrunePlan | None] = {}
    for view, start in selected:
        try:
            plans[view.name] = plan_prune(store=store, view=view, start=start, end=end)
        except PruneUnsupported as why:
            _log.warning("view %s: online values not in the window are kept (%s)", view.name, why)
            plans[view.name] = None
    counted = [p for p in plans.values() if p is not None]
    if max_removed_share is not None and any(p.share > max_removed_share for p in counted):
        raise RemovalRefused(end=end, plans=counted, max_share=max_removed_share)
    direct = DirectRedisWriter(store) if writer != "feast" and not store_problem else None
    start_spark_session(store=store)  # on Spark: its JVM's output into a log, not the terminal
    try:
        mark_started(store=store, views=[v.name for v, _ in selected], run_id=run_id, at=wall_clock())
        marked = True
    except MarkersUnsupported as why:
        _log.warning("materialize: no completion markers (%s)", why)
        marked = False
    windows: dict[str, tuple[datetime, datetime]] = {}
    writers: dict[str, str] = {}
    removed: dict[str, int | None] = {}
    try:
        for view, start in selected:
            plan = plans[view.name]
            removed[view.name] = None if plan is None else apply_prune(store=store, view=view, plan=plan)
            used = "feast"
            if direct is not None:
                try:
                    direct.write_view(view, start=start, end=end)
                    used = "direct"
                except DirectWriterUnsupported as why:
                    if writer == "direct":
                        raise
                    _log.warning("view %s: direct Redis writer not used (%s); using Feast", view.name, why)
                direct.flush()  # the view's rows are all written (and the views' writes stay in order)
            if used == "feast":
                # Feast prints progress bars to stdout; a library function returns, it does not print.
                with contextlib.redirect_stdout(io.StringIO()):
                    store.materialize(start_date=start, end_date=end, feature_views=[view.name])
            if marked:
                rows = None if plan is None else plan.window
                mark_finished(store=store, view=view.name, run_id=run_id, end=end, rows=rows, at=wall_clock())
            windows[view.name] = (start, end)
            writers[view.name] = used
            if on_view is not None:
                on_view(view.name)
    finally:
        if direct is not None:
            direct.close()
    return MaterializeResult(
        end=end, windows=windows, writers=writers, removed=removed, run_id=run_id, marked=marked
    )


def _is_redis(store: FeatureStore) -> bool:
    return getattr(store.config.online_store, "type", None) == "redis"


__all__ = [
    "DirectWriterUnsupported",  # raised by materialize(writer="direct"); defined by the writer
    "MaterializeResult",
    "RemovalRefused",
    "Writer",
    "latest_event_time",
    "materialize",
]
