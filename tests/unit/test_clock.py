"""The one clock (issue 17.1): no package reads the time but churnops/contracts/clock.py, every
command takes the pinned "now" (CHURNOPS_NOW or its option), and a "now" in the future is
refused with exit 2 naming the option."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.clock import MAX_FUTURE_SKEW, FutureTimeError, current_time, not_in_future
from churnops.contracts.columns import CREATED_TS, EVENT_TS
from churnops.contracts.sources import read_source
from churnops.settings import Settings
from tests.support.telco_csv import telco_table, write_csv

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("churnops", "registry_ext", "serving", "monitoring", "feature_repo")
THE_CLOCK = ROOT / "churnops" / "contracts" / "clock.py"
PINNED = "2025-03-15T09:30:00Z"
PINNED_AT = datetime(2025, 3, 15, 9, 30, tzinfo=UTC)

# Calls that read the wall clock. Durations (time.monotonic, time.perf_counter) are allowed.
CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("time", "ctime"),
    ("Timestamp", "now"),
    ("Timestamp", "utcnow"),
    ("Timestamp", "today"),
}
CLOCK_NAMES = {"time": {"time", "time_ns", "localtime", "gmtime", "ctime"}}  # from time import time
CLOCK_STRINGS = {"now", "today"}  # pd.Timestamp("now"), np.datetime64("today"), pd.to_datetime("now")
CLOCK_PARSERS = {"Timestamp", "datetime64", "to_datetime", "Period"}


def clock_reads(source: str) -> list[str]:
    """Each direct read of the wall clock in ``source``, as ``line: code``."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in CLOCK_NAMES:
            for alias in node.names:
                if alias.name in CLOCK_NAMES[node.module]:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = func.value
            owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (owner_name, func.attr) in CLOCK_CALLS:
                found.append((node.lineno, ast.unparse(node)))
                continue
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called in CLOCK_PARSERS and any(
            isinstance(arg, ast.Constant)
            and isinstance(arg.value, str)
            and arg.value.lower() in CLOCK_STRINGS
            for arg in node.args[:1]
        ):
            found.append((node.lineno, ast.unparse(node)))
    return [f"{line}: {code}" for line, code in sorted(found)]


def package_files() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


@pytest.mark.parametrize(
    "snippet",
    [
        "from datetime import UTC, datetime\nx = datetime.now(UTC)",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "import time\nx = time.time()",
        "import time\nx = int(time.time_ns())",
        "from time import time\nx = time()",
        "import pandas as pd\nx = pd.Timestamp.now(tz='UTC')",
        "import pandas as pd\nx = pd.Timestamp('now')",
        "import numpy as np\nx = np.datetime64('today')",
        "import pandas as pd\nx = pd.to_datetime('NOW', utc=True)",
    ],
)
def test_the_detector_finds_each_way_of_reading_the_clock(snippet: str) -> None:
    assert clock_reads(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "import time\nx = time.monotonic()",
        "import time\nx = time.perf_counter()",
        "from churnops.contracts.clock import wall_clock\nx = wall_clock()",
        "x = settings.clock",
        "x = f'now: {1}'",
        "x = field_validator('now')",
    ],
)
def test_durations_and_the_injected_clock_pass(snippet: str) -> None:
    assert clock_reads(snippet) == []


def test_no_package_reads_the_clock_but_the_clock_module() -> None:
    """Every path that reads "now" takes it injected (Settings.clock at the entry point, a
    ``now=`` argument below it) or calls churnops.contracts.clock.wall_clock() as its default;
    time.monotonic / perf_counter measure durations."""
    files = package_files()
    assert len(files) > 100 and THE_CLOCK in files
    offenders = {
        str(path.relative_to(ROOT)): reads
        for path in files
        if path != THE_CLOCK and (reads := clock_reads(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "read the time through churnops.contracts.clock: " + json.dumps(
        offenders, indent=1
    )
    assert clock_reads(THE_CLOCK.read_text(encoding="utf-8"))  # the one place that does


def test_a_pinned_time_may_lie_in_the_past_but_not_beyond_the_skew() -> None:
    wall = datetime(2026, 12, 7, 12, tzinfo=UTC)
    past = wall - timedelta(days=400)
    assert not_in_future(past, field="--now", wall=wall) == past
    assert not_in_future(wall + MAX_FUTURE_SKEW, field="--now", wall=wall) == wall + MAX_FUTURE_SKEW
    with pytest.raises(FutureTimeError, match="--now 2026-12-07T12:05:01Z lies in the future"):
        not_in_future(wall + MAX_FUTURE_SKEW + timedelta(seconds=1), field="--now", wall=wall)
    assert current_time(past) == past
    before = datetime.now(UTC)
    assert before <= current_time(None) <= datetime.now(UTC)


def test_settings_clock_is_the_pinned_time(tmp_path: Path) -> None:
    assert Settings(home=tmp_path, now=PINNED, _env_file=None).clock == PINNED_AT  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"CHURNOPS_NOW .* lies in the future"):
        Settings(home=tmp_path, now="2199-01-01T00:00:00Z", _env_file=None)  # type: ignore[arg-type]


FUTURE = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def home_that_passes_the_guard(home: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Empty stand-ins for the sources, the Feast registry and MLflow's database: the CLI's home
    guard (churnops.commands.home_guard) lets the command parse its options."""
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    paths = [home / "sources" / "account" / "x.parquet", home / "feast" / "registry.db", home / "mlflow.db"]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return paths


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["retrain", "check", "--now", FUTURE], "--now"),
        (["retrain", "run", "--now", FUTURE], "--now"),
        (["demo", "--now", FUTURE], "--now"),
        (["monitor", "drift", "--as-of", FUTURE], "--as-of"),
        (["monitor", "performance", "--as-of", FUTURE], "--as-of"),
        (["score", "--as-of", FUTURE], "--as-of"),
    ],
)
def test_a_future_now_is_refused_naming_the_option(
    args: list[str], option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    placeholders = home_that_passes_the_guard(tmp_path / "home", monkeypatch)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"{option} {FUTURE} lies in the future" in result.output
    assert "Traceback" not in result.output
    assert all(path.stat().st_size == 0 for path in placeholders)  # refused before any write


def test_an_as_of_after_the_pinned_now_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--as-of acts as now: it may not pass the pinned clock either (a replay stays in its past)."""
    home_that_passes_the_guard(tmp_path / "home", monkeypatch)
    monkeypatch.setenv("CHURNOPS_NOW", PINNED)
    result = CliRunner().invoke(app, ["monitor", "performance", "--as-of", "2025-04-01T00:00:00Z", "--json"])
    assert result.exit_code == 2, result.output
    assert (
        "--as-of 2025-04-01T00:00:00Z lies in the future (the clock says 2025-03-15T09:30:00Z)"
        in (json.loads(result.stdout)["error"])
    )


def test_a_future_churnops_now_is_refused_by_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home_that_passes_the_guard(tmp_path / "home", monkeypatch)
    monkeypatch.setenv("CHURNOPS_NOW", FUTURE)
    result = CliRunner().invoke(app, ["retrain", "check"])
    assert result.exit_code == 2, result.output
    assert "CHURNOPS_NOW" in result.output and "lies in the future" in result.output


def test_data_commands_read_the_pinned_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data generate's freshness warning, data ingest's freshness and its rows' created time
    are as of CHURNOPS_NOW, not the wall clock."""
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_NOW", PINNED)
    runner = CliRunner()
    generated = runner.invoke(
        app, ["data", "generate", "--customers", "50", "--months", "3", "--start", "2025-01-01", "--json"]
    )
    assert generated.exit_code == 0, generated.output
    assert json.loads(generated.stdout)["warning"] is None  # fresh on 2025-03-15, stale today

    table = telco_table(customers=40, seed=3, new_customers=0)
    csv_path = write_csv(path=tmp_path / "telco.csv", header=table.header, rows=table.rows)
    ingested = runner.invoke(
        app, ["data", "ingest", str(csv_path), "--as-of", "2025-03-10T00:00:00Z", "--json"]
    )
    assert ingested.exit_code == 0, ingested.output
    doc = json.loads(ingested.stdout)
    assert doc["freshness"]["now"] == PINNED_AT.isoformat()
    assert doc["warning"] is None
    sources = Settings(home=tmp_path / "home", _env_file=None).sources_dir
    account = read_source(sources_dir=sources, name="account")
    ingested_rows = account[account[EVENT_TS] == pd.Timestamp("2025-03-10", tz="UTC")]
    assert len(ingested_rows) == 40
    assert set(ingested_rows[CREATED_TS]) == {pd.Timestamp(PINNED_AT)}


def test_the_registry_stamps_its_records_with_the_settings_clock(tmp_path: Path) -> None:
    from churnops.wiring import open_registry

    settings = Settings(home=tmp_path / "home", now=PINNED, _env_file=None)  # type: ignore[arg-type]
    with open_registry(settings, write=True) as registry:
        assert registry.clock() == PINNED_AT
