"""`features materialize` refuses what would wreck the online store (issue 17.7): an `--end`
beyond now (exit 2, the pinned clock included), a run that would remove more than
CHURNOPS_MATERIALIZE_MAX_REMOVED_SHARE of a view's customers (exit 3, nothing removed, unless
--force); and every view carries a completion marker that a killed run leaves unfinished, which
the serving reader's readiness check names (embedded SQLite home)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.columns import VIEWS
from churnops.features.freshness import today_as_of
from tests.support.telco_csv import telco_table, write_csv

pytestmark = pytest.mark.integration

CUSTOMERS = 40


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, feast_project: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_PROJECT", feast_project)
    monkeypatch.setenv("COLUMNS", "80")
    table = telco_table(customers=CUSTOMERS, seed=3)
    csv = write_csv(path=tmp_path / "telco.csv", header=table.header, rows=table.rows)
    run("data", "ingest", str(csv), "--as-of", f"{today_as_of():%Y-%m-%dT%H:%M:%SZ}")
    run("features", "apply")
    return tmp_path / "home"


def invoke(*argv: str) -> Any:
    return CliRunner().invoke(app, list(argv))


def run(*argv: str) -> Any:
    result = invoke(*argv)
    assert result.exit_code == 0, result.output
    return result


def ids() -> list[str]:
    return [row[0] for row in telco_table(customers=CUSTOMERS, seed=3).rows]


def online_statuses() -> set[str]:
    payload = json.loads(run("features", "online", *ids()[:5], "--json").stdout)
    return {row["status"] for row in payload}


def test_an_end_beyond_now_is_refused_naming_the_option(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("features", "materialize")
    result = invoke("features", "materialize", "--end", "2199-12-31T00:00:00Z", "--json")
    assert result.exit_code == 2, result.output
    assert "--end 2199-12-31" in json.loads(result.stdout)["error"]
    assert online_statuses() == {"ok"}  # nothing was touched

    # "now" is the pinned clock: an --end after CHURNOPS_NOW is the future, even if the wall clock
    # has passed it; up to now (and the 5-minute skew) is fine.
    pinned = today_as_of()  # today 00:00 UTC: the past for the wall clock
    monkeypatch.setenv("CHURNOPS_NOW", f"{pinned:%Y-%m-%dT%H:%M:%SZ}")
    later = invoke("features", "materialize", "--end", f"{pinned + timedelta(minutes=10):%Y-%m-%dT%H:%M:%SZ}")
    assert later.exit_code == 2 and "--end" in later.stderr and "future" in later.stderr, later.output
    assert "Traceback" not in later.output
    run("features", "materialize", "--end", f"{pinned + timedelta(minutes=4):%Y-%m-%dT%H:%M:%SZ}")


def test_a_run_removing_most_of_the_store_is_refused_unless_forced(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("features", "materialize")
    assert online_statuses() == {"ok"}
    # Before any source row: every customer would lose every view.
    early = "2023-01-01T00:00:00Z"
    refused = invoke("features", "materialize", "--end", early, "--json")
    assert refused.exit_code == 3, refused.output
    payload = json.loads(refused.stdout)
    assert payload["refused"] == "removal_share" and payload["max_removed_share"] == 0.2
    assert set(payload["views"]) == set(VIEWS)
    for view in payload["views"].values():
        assert view["stored"] == view["would_remove"] == view["no_source_row_in_window"] == CUSTOMERS
    assert f"would remove {CUSTOMERS} of {CUSTOMERS} customers (100%)" in payload["error"]
    assert "--force" in payload["error"]
    text = invoke("features", "materialize", "--end", early)
    assert text.exit_code == 3 and "no source row in its window" in text.stderr, text.output
    assert online_statuses() == {"ok"}  # counted, never removed

    monkeypatch.setenv("CHURNOPS_MATERIALIZE_MAX_REMOVED_SHARE", "1.5")
    bad = invoke("features", "materialize", "--end", early)
    assert bad.exit_code == 2 and "CHURNOPS_MATERIALIZE_MAX_REMOVED_SHARE" in bad.stderr, bad.output
    monkeypatch.delenv("CHURNOPS_MATERIALIZE_MAX_REMOVED_SHARE")

    forced = json.loads(run("features", "materialize", "--end", early, "--force", "--json").stdout)
    assert {v["removed"] for v in forced["views"].values()} == {CUSTOMERS}
    assert online_statuses() == {"unknown_customer"}
    # Filling an emptied store removes nothing: no refusal.
    run("features", "materialize")
    assert online_statuses() == {"ok"}


def test_a_killed_run_leaves_its_views_unfinished_and_readiness_names_them(home: Path) -> None:
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    from churnops.contracts.materialization import completion_problem
    from churnops.features.fastpath.markers import read_markers
    from churnops.features.materialize import materialize
    from churnops.features.online import service_layout
    from churnops.settings import Settings
    from churnops.wiring import feature_store
    from serving.features import FeastReader

    settings = Settings()
    store = feature_store(settings)
    layout = service_layout(store=store, feature_service=settings.feature_service)
    reader = FeastReader(store=store, layout=layout, deadline_s=2.0)
    views = list(layout.ttl)
    assert sorted(views) == sorted(VIEWS)
    assert "never materialized" in (asyncio.run(reader.problem()) or "")

    end = json.loads(run("features", "materialize", "--json").stdout)
    assert asyncio.run(reader.problem()) is None
    markers = read_markers(store=store, views=views)
    assert {m.finished_run for m in markers.values()} == {end["run_id"]}
    assert {m.finished_rows for m in markers.values()} == {CUSTOMERS}

    at = markers[views[0]].finished_end
    assert at is not None and at.isoformat() == end["end"]

    class Killed(Exception):
        pass

    done: list[str] = []

    def die_after_first(view: str) -> None:
        done.append(view)
        raise Killed(view)

    # A later run killed after its first view: the earlier complete run still holds every view.
    with pytest.raises(Killed):
        materialize(store=store, end=at, on_view=die_after_first)
    assert asyncio.run(reader.problem()) is None

    # The online store emptied (the SQLite file deleted), then a run killed half way.
    Path(SqliteOnlineStore._get_db_path(store.config)).unlink()
    run("features", "apply")  # Feast's tables back, empty (a materialize alone fails without them)
    assert "never materialized" in (asyncio.run(reader.problem()) or "")
    done.clear()
    with pytest.raises(Killed) as killed:
        materialize(store=store, end=at, on_view=die_after_first)
    first = done[0]
    markers = read_markers(store=store, views=views)
    assert markers[first].complete
    unfinished = [v for v in views if v != first]
    assert all(not markers[v].complete and markers[v].in_progress for v in unfinished)
    problem = asyncio.run(reader.problem()) or ""
    assert f"view {unfinished[0]} is not completely materialized" in problem, problem
    assert completion_problem(views=[first], markers=markers) is None
    assert str(killed.value) == first

    run("features", "materialize")
    assert asyncio.run(reader.problem()) is None
