"""The completion-marker rule (churnops.contracts.materialization): which store is complete, and
the message that names the incomplete view."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime

import pytest

from churnops.contracts.materialization import (
    ViewMarker,
    completion_problem,
    redis_marker_key,
    redis_marker_pattern,
)

AT = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
VIEWS = ["profile", "account", "services"]


def finished(view: str, run: str = "r1") -> ViewMarker:
    return ViewMarker(view=view, started_run=run, finished_run=run, finished_end=AT, finished_rows=7)


def test_every_view_finished_is_complete_even_while_a_later_run_refreshes_it() -> None:
    markers = {v: finished(v) for v in VIEWS}
    assert completion_problem(views=VIEWS, markers=markers) is None
    markers["account"] = ViewMarker(
        view="account", started_run="r2", started_at=AT, finished_run="r1", finished_end=AT
    )
    assert markers["account"].in_progress and markers["account"].complete
    assert completion_problem(views=VIEWS, markers=markers) is None


def test_a_missing_or_unfinished_view_is_named() -> None:
    markers = {"profile": finished("profile")}
    problem = completion_problem(views=VIEWS, markers=markers)
    assert problem is not None and problem.startswith("view account was never materialized")
    assert "churnops features materialize" in problem
    markers["account"] = ViewMarker(view="account", started_run="r9", started_at=AT)
    markers["services"] = finished("services")
    problem = completion_problem(views=VIEWS, markers=markers)
    assert problem is not None
    assert "view account is not completely materialized: run r9 started at 2026-12-01T08:30:00Z" in problem


def test_markers_round_trip_through_strings_and_bytes() -> None:
    marker = ViewMarker(
        view="account",
        started_run="r2",
        started_at=AT,
        finished_run="r1",
        finished_end=AT,
        finished_rows=12,
        finished_at=AT,
    )
    fields = marker.to_fields()
    assert ViewMarker.from_fields(view="account", fields=fields) == marker
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    assert ViewMarker.from_fields(view="account", fields=raw) == marker
    with pytest.raises(ValueError, match="yesterday"):
        ViewMarker.from_fields(view="account", fields={"finished_end": "yesterday"})


def test_the_key_lives_in_the_project_namespace_and_the_pattern_matches_only_it() -> None:
    key = redis_marker_key(project="t1", view="account")
    assert key == b"t1:churnops:materialized:account"
    pattern = redis_marker_pattern(project="t1").decode()
    assert fnmatch.fnmatchcase(key.decode(), pattern)
    assert not fnmatch.fnmatchcase(redis_marker_key(project="t12", view="account").decode(), pattern)
    assert redis_marker_pattern(project="a*b") == rb"a\*b:churnops:materialized:*"
    with pytest.raises(ValueError, match="project"):
        redis_marker_key(project="", view="account")
