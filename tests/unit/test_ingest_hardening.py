"""Ingestion under hostile input (issue 12.11): the id rule, control characters, huge fields,
unbalanced quotes, --as-of range, spreadsheet-safe quarantine files, counts that add up."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.ids import MAX_ID_LENGTH, id_problem, is_customer_id
from churnops.contracts.sources import read_source
from churnops.data.generate import generate_churn_data
from churnops.data.ingest import IngestReport, ingest_telco, neutralise_formula, original_value
from churnops.settings import Settings
from serving.validation import PredictRequest
from tests.support.telco_csv import TelcoTable, telco_table, write_csv

AS_OF = datetime(2024, 6, 30, tzinfo=UTC)
csv.field_size_limit(1 << 26)  # the quarantine file keeps a 10 MB value whole


@pytest.fixture(scope="module")
def table() -> TelcoTable:
    return telco_table(customers=40, seed=3)


def ingest(tmp: Path, header: list[str], rows: list[list[str]]) -> tuple[IngestReport, list[list[str]]]:
    path = write_csv(path=tmp / "in.csv", header=header, rows=rows)
    home = Settings(home=tmp / "home", _env_file=None)
    report = ingest_telco(
        path=path, as_of=AS_OF, sources_dir=home.sources_dir, quarantine_dir=home.quarantine_dir
    )
    if report.quarantine_path is None:  # nothing quarantined: no file is written
        return report, []
    with report.quarantine_path.open(newline="", encoding="utf-8") as handle:
        quarantined = list(csv.reader(handle))[1:]
    return report, quarantined


def stored_ids(tmp: Path) -> set[str]:
    frame = read_source(sources_dir=Settings(home=tmp / "home", _env_file=None).sources_dir, name="profile")
    return set(frame["customer_id"])


def oracle_id_ok(value: str) -> bool:
    """Brute force: 1-64 chars, each printable ASCII non-space, the first a letter or digit."""
    return (
        1 <= len(value) <= MAX_ID_LENGTH
        and all(0x21 <= ord(c) <= 0x7E for c in value)
        and (value[0].isascii() and value[0].isalnum())
    )


@hsettings(max_examples=500, deadline=None)
@given(value=st.text(max_size=70) | st.text(alphabet="A-9=+@ \t\x00é", max_size=8))
def test_one_id_rule_for_contracts_and_serving(value: str) -> None:
    assert is_customer_id(value) == oracle_id_ok(value) == (id_problem(value) is None)
    try:
        PredictRequest.model_validate({"customer_ids": [value]})
        served = True
    except ValueError:
        served = False
    assert served == oracle_id_ok(value)


BAD_IDS = ["7590 ABCDE", "7590-ÄBCDE", "A" * 200, "75\t90", "75\x0090", "=1+2", "@SUM(A1)", "-2+3", "+1"]


def test_ids_serving_refuses_are_quarantined_with_the_reason(table: TelcoTable, tmp_path: Path) -> None:
    header, rows = table.lists()
    for row, bad in zip(rows, BAD_IDS, strict=False):
        row[0] = bad
    report, quarantined = ingest(tmp_path, header, rows)
    assert (report.read, report.quarantined, report.accepted) == (40, len(BAD_IDS), 40 - len(BAD_IDS))
    reasons = {original_value(r[0]): r[-1] for r in quarantined}
    assert set(reasons) == set(BAD_IDS)
    for bad in BAD_IDS:
        assert "customerID" in reasons[bad] and "printable ASCII" in reasons[bad]
    assert all(is_customer_id(i) for i in stored_ids(tmp_path))


def test_a_nul_inside_a_category_is_quarantined_not_stored_as_male(table: TelcoTable, tmp_path: Path) -> None:
    header, rows = table.lists()
    rows[0][1] = "Ma\x00le"
    report, quarantined = ingest(tmp_path, header, rows)
    assert report.quarantined == 1 and rows[0][0] not in stored_ids(tmp_path)
    assert "control character U+0000" in quarantined[0][-1]


def test_a_10_mb_field_quarantines_its_row_only(table: TelcoTable, tmp_path: Path) -> None:
    header, rows = table.lists()
    rows[5][header.index("PaymentMethod")] = "X" * (10 * 1024 * 1024)
    report, quarantined = ingest(tmp_path, header, rows)
    assert (report.read, report.accepted, report.quarantined) == (40, 39, 1)
    reason = quarantined[0][-1]
    assert "longer than 256 characters" in reason and len(reason) < 2000  # the value is not echoed


def test_an_unbalanced_quote_is_reported_with_the_quote_and_where(table: TelcoTable, tmp_path: Path) -> None:
    header, rows = table.lists()
    path = write_csv(path=tmp_path / "in.csv", header=header, rows=rows)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",", ',"', 3).replace(',"', ",", 2)  # one stray quote in record 4
    path.write_text("\n".join(lines) + "\n")
    home = Settings(home=tmp_path / "home", _env_file=None)
    report = ingest_telco(
        path=path, as_of=AS_OF, sources_dir=home.sources_dir, quarantine_dir=home.quarantine_dir
    )
    frame = pd.read_csv(report.quarantine_path, dtype=str)
    reason = frame["_reasons"].iloc[0]
    assert re.search(r"unbalanced quote \('\"'\) at record 4, character \d+ \(column '\w+'\)", reason), reason
    assert "joins the next 37 line(s)" in reason
    assert report.read == report.accepted + report.quarantined


def test_as_of_outside_the_sane_range_is_refused_at_ingest(table: TelcoTable, tmp_path: Path) -> None:
    path = write_csv(path=tmp_path / "in.csv", header=table.header, rows=table.rows)
    result = CliRunner().invoke(
        app,
        ["data", "ingest", str(path), "--as-of", "0001-01-01T00:00:00Z"],
        env={"CHURNOPS_HOME": str(tmp_path / "home")},
    )
    assert result.exit_code == 2, result.output
    assert "--as-of" in result.stderr and "outside 1970-01-01" in result.stderr
    home = Settings(home=tmp_path / "home", _env_file=None)
    with pytest.raises(ValueError, match=r"as_of .* is outside"):
        ingest_telco(
            path=path,
            as_of=datetime(2999, 1, 1, tzinfo=UTC),
            sources_dir=home.sources_dir,
            quarantine_dir=home.quarantine_dir,
        )


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "'quoted"]


@hsettings(max_examples=200, deadline=None)
@given(value=st.text(max_size=12) | st.sampled_from(FORMULAS))
def test_neutralised_cells_never_start_a_formula_and_round_trip(value: str) -> None:
    cell = neutralise_formula(value)
    assert isinstance(cell, str)
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert original_value(cell) == value


def test_quarantine_csv_holds_no_formula_and_keeps_the_original(table: TelcoTable, tmp_path: Path) -> None:
    header, rows = table.lists()
    for row, bad in zip(rows, FORMULAS, strict=False):
        row[header.index("Contract")] = bad
    report, quarantined = ingest(tmp_path, header, rows)
    # "\r=1" splits its record in two (a CR ends a line): both halves are quarantined too.
    assert report.quarantined == len(FORMULAS) + 1
    cells = [cell for row in quarantined for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    contracts = {original_value(r[header.index("Contract")]) for r in quarantined}
    assert contracts >= {'=HYPERLINK("http://x")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "'quoted"}
    assert "=1" in {original_value(r[0]) for r in quarantined}  # the half after the CR


HOSTILE_CELLS = st.sampled_from(["", "Yes", "Ma\x00le", '"', "=1", "X" * 300, "a,b", "\x1b[2J", "-5", "0"])


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 20), HOSTILE_CELLS), max_size=12))
def test_every_row_read_is_accepted_or_quarantined_with_a_reason(
    table: TelcoTable, tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[int, int, str]]
) -> None:
    header, rows = table.lists()
    for r, c, value in edits:
        rows[r][c] = value
    tmp = tmp_path_factory.mktemp("counts")
    report, quarantined = ingest(tmp, header, rows)
    assert report.read == report.accepted + report.quarantined
    assert len(quarantined) == report.quarantined
    assert all(row[-1] for row in quarantined)  # every quarantined row says why
    assert len(stored_ids(tmp)) == report.accepted


def test_generated_ids_follow_the_rule() -> None:
    frame = generate_churn_data(customers=2_000, months=2, seed=11).frame
    assert all(is_customer_id(i) for i in frame["customer_id"].unique())


def test_json_report_of_a_hostile_file_is_one_document(table: TelcoTable, tmp_path: Path) -> None:
    header, rows = table.lists()
    header.append("[/bold]\x1b[31mextra")
    for row in rows:
        row.append("x")
    path = write_csv(path=tmp_path / "in.csv", header=header, rows=rows)
    env = {"CHURNOPS_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    shown = CliRunner().invoke(app, ["data", "ingest", str(path), "--as-of", "2024-06-30T00:00:00Z"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "\x1b[31m" not in shown.stdout and "[/bold]" in shown.stdout
    doc = CliRunner().invoke(
        app, ["data", "ingest", str(path), "--as-of", "2024-06-30T00:00:00Z", "--json"], env=env
    )
    assert json.loads(doc.stdout)["extra_columns"] == ["[/bold]\x1b[31mextra"]
