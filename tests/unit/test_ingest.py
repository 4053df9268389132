"""Telco CSV ingestion: the real file, its real-world variants, bad rows, unusable files, the CLI.

Expected values come from reading the CSV independently with the csv module, never from the
code under test. Only the tests about the public file read it; the variants start from generated
customers rendered in its format (tests/support/telco_csv.py), checked against it here.
"""

from __future__ import annotations

import csv
import json
import random
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.columns import FEATURES, JOIN_KEY, LABEL, column
from churnops.contracts.sources import read_source
from churnops.data.ingest import DataFileError, IngestReport, ingest_telco, reasons_of
from churnops.data.validate import ALIASES, header_key
from churnops.settings import Settings
from tests.support.telco_csv import BLANK_TOTAL, TelcoTable, telco_header, telco_table, write_csv

AS_OF = datetime(2024, 6, 30, tzinfo=UTC)
PART = "telco-20240630T000000Z"
TELCO_TO_FIELD = {"customerID": JOIN_KEY, "Churn": LABEL, **{c.telco: c.name for c in FEATURES}}
N = 500  # generated customers in the variant tests (the public file has 7,043)
NEW = 5  # of them rendered as new customers: tenure 0, blank TotalCharges


# ---------------------------------------------------------------- helpers


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_rows(
    path: Path, header: list[str], rows: list[list[str]], *, bom: bool = False, newline: str = "\n"
) -> Path:
    return write_csv(path=path, header=header, rows=rows, bom=bom, newline=newline)


def run(path: Path, settings: Settings, as_of: datetime = AS_OF) -> IngestReport:
    return ingest_telco(
        path=path, as_of=as_of, sources_dir=settings.sources_dir, quarantine_dir=settings.quarantine_dir
    )


def wide(settings: Settings, *, labels: bool = True) -> pd.DataFrame:
    """Every source joined back into one frame per customer, sorted, without `created`."""
    frame = read_source(sources_dir=settings.sources_dir, name="profile")
    for name in ("account", "services", *(("labels",) if labels else ())):
        frame = frame.merge(
            read_source(sources_dir=settings.sources_dir, name=name).drop(columns="created"),
            on=[JOIN_KEY, "event_timestamp"],
            validate="one_to_one",
        )
    return frame.drop(columns="created").sort_values(JOIN_KEY).reset_index(drop=True)


def quarantine(report: IngestReport) -> pd.DataFrame:
    if report.quarantine_path is None:  # nothing quarantined: no file
        assert report.quarantined == 0
        return pd.DataFrame({"_row": [], "_reasons": []}, dtype=str)
    return pd.read_csv(report.quarantine_path, dtype=str, keep_default_na=False)


def reasons_by_row(report: IngestReport) -> dict[int, str]:
    q = quarantine(report)
    return dict(zip(q["_row"].astype(int), q["_reasons"], strict=True))


@pytest.fixture(scope="session")
def generated() -> TelcoTable:
    return telco_table(customers=N, seed=7, new_customers=NEW)


@pytest.fixture
def telco(generated: TelcoTable) -> tuple[list[str], list[list[str]]]:
    """Generated customers in the Telco format: a fresh copy per test, free to edit."""
    return generated.lists()


@pytest.fixture
def generated_csv(generated: TelcoTable, tmp_path: Path) -> Path:
    return write_csv(path=tmp_path / "generated.csv", header=generated.header, rows=generated.rows)


@pytest.fixture(scope="module")
def baseline(generated: TelcoTable, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The generated file ingested once, as the wide frame every clean variant must reproduce."""
    tmp = tmp_path_factory.mktemp("baseline")
    home = Settings(home=tmp / "home", _env_file=None)
    run(write_csv(path=tmp / "generated.csv", header=generated.header, rows=generated.rows), home)
    return wide(home)


# ---------------------------------------------------------------- the real file


def test_real_file_is_fully_accepted(telco_csv: Path, settings: Settings) -> None:
    header, rows = read_rows(telco_csv)
    idx = {h: i for i, h in enumerate(header)}
    blank_total = {r[idx["customerID"]] for r in rows if not r[idx["TotalCharges"]].strip()}
    assert len(rows) == 7043
    assert len(blank_total) == 11

    before = datetime.now(UTC)
    report = run(telco_csv, settings)
    after = datetime.now(UTC)

    assert (report.read, report.accepted, report.quarantined) == (7043, 7043, 0)
    assert report.filled_total_charges == 11
    assert report.with_labels
    assert report.violations == ()
    assert report.part == PART
    assert report.quarantine_path is None  # no header-only quarantine file (issue 10.11)
    assert not list(settings.quarantine_dir.glob("*.csv"))
    frame = wide(settings)
    assert len(frame) == 7043
    assert set(frame[JOIN_KEY]) == {r[idx["customerID"]] for r in rows}
    # blank TotalCharges are all new customers: accepted with 0.0
    new = frame[frame[JOIN_KEY].isin(blank_total)]
    assert (new["tenure"] == 0).all()
    assert (new["total_charges"] == 0.0).all()
    assert (frame["tenure"] == 0).sum() == 11
    # values survive the trip: label and a numeric column against the csv module's reading
    assert frame[LABEL].sum() == sum(r[idx["Churn"]] == "Yes" for r in rows)
    by_id = frame.set_index(JOIN_KEY)
    for r in rows[:50]:
        got = by_id.loc[r[idx["customerID"]]]
        assert got["monthly_charges"] == pytest.approx(float(r[idx["MonthlyCharges"]]))
        assert got["senior_citizen"] == int(r[idx["SeniorCitizen"]])
        assert got["partner"] == (1 if r[idx["Partner"]] == "Yes" else 0)
        assert got["payment_method"] == r[idx["PaymentMethod"]]
    assert (frame["event_timestamp"] == pd.Timestamp(AS_OF)).all()
    created = read_source(sources_dir=settings.sources_dir, name="account")["created"]
    assert str(created.dt.tz) == "UTC"
    assert created.min() >= pd.Timestamp(before).floor("us")
    assert created.max() <= pd.Timestamp(after)


def test_generated_table_looks_like_the_real_file(telco_csv: Path, generated: TelcoTable) -> None:
    """The stand-in the variant tests use: same header, same value spellings per column, blank
    TotalCharges exactly where tenure is 0."""
    header, rows = read_rows(telco_csv)
    assert tuple(header) == telco_header() == generated.header
    real = {h: {r[i] for r in rows} for i, h in enumerate(header)}
    mine = {h: {r[i] for r in generated.rows} for i, h in enumerate(header)}
    for col in FEATURES:
        if col.kind in ("category", "flag"):
            assert mine[col.telco] <= real[col.telco], col.telco
            assert len(mine[col.telco]) == len(real[col.telco]), col.telco
    assert mine["Churn"] == real["Churn"] == {"Yes", "No"}
    for table in (rows, generated.rows):
        blank = [r for r in table if not r[header.index("TotalCharges")].strip()]
        assert blank and {r[header.index("TotalCharges")] for r in blank} == {BLANK_TOTAL}
        assert {r[header.index("tenure")] for r in blank} == {"0"}
        assert all(r[header.index("tenure")] != "0" for r in table if r not in blank)
    assert len(generated.new_customers) == NEW
    assert len({r[0] for r in generated.rows}) == N


def test_reingest_same_as_of_is_idempotent(generated_csv: Path, settings: Settings) -> None:
    run(generated_csv, settings)
    first = wide(settings)
    run(generated_csv, settings)
    for name in ("profile", "account", "services", "labels"):
        assert [p.name for p in (settings.sources_dir / name).glob("*.parquet")] == [f"{PART}.parquet"]
    pd.testing.assert_frame_equal(wide(settings), first)
    other = datetime(2024, 7, 31, 12, tzinfo=timezone(timedelta(hours=2)))
    report = run(generated_csv, settings, as_of=other)
    assert report.part == "telco-20240731T100000Z"
    assert len(read_source(sources_dir=settings.sources_dir, name="account")) == 2 * N


def test_naive_as_of_is_refused(generated_csv: Path, settings: Settings) -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        run(generated_csv, settings, as_of=datetime(2024, 6, 30))


# ---------------------------------------------------------------- real-world variants


def _rename(header: list[str], how: Callable[[str], str]) -> list[str]:
    return [how(h) for h in header]


def _snake(name: str) -> str:
    return TELCO_TO_FIELD[name] if name != "Churn" else "Churn"


def _spaced(name: str) -> str:
    # 'TotalCharges' -> 'Total Charges', 'customerID' -> 'customer ID'
    out = "".join(
        " " + ch if ch.isupper() and i and not name[i - 1].isupper() else ch for i, ch in enumerate(name)
    )
    return f"  {out} "


def _upper_values(rows: list[list[str]], header: list[str]) -> list[list[str]]:
    keep = {header.index("customerID")}
    return [[v if i in keep else v.upper() for i, v in enumerate(r)] for r in rows]


def _flags_as_numbers(rows: list[list[str]], header: list[str]) -> list[list[str]]:
    flags = {header.index(c.telco) for c in FEATURES if c.kind == "flag"} | {header.index("Churn")}
    table = {"Yes": "1", "No": "0"}
    return [[table.get(v, v) if i in flags else v for i, v in enumerate(r)] for r in rows]


def _flags_as_bools(rows: list[list[str]], header: list[str]) -> list[list[str]]:
    flags = {header.index(c.telco) for c in FEATURES if c.kind == "flag"} | {header.index("Churn")}
    table = {"Yes": "true", "No": "FALSE", "1": "True", "0": "false"}
    return [[table.get(v, v) if i in flags else v for i, v in enumerate(r)] for r in rows]


def _padded(rows: list[list[str]], header: list[str]) -> list[list[str]]:
    return [[f"  {v}\t" for v in r] for r in rows]


VARIANTS: dict[
    str, Callable[[list[str], list[list[str]]], tuple[list[str], list[list[str]], dict[str, object]]]
] = {
    "bom": lambda h, r: (h, r, {"bom": True}),
    "crlf": lambda h, r: (h, r, {"newline": "\r\n"}),
    "bom+crlf": lambda h, r: (h, r, {"bom": True, "newline": "\r\n"}),
    "snake_case headers": lambda h, r: (_rename(h, _snake), r, {}),
    "UPPER headers": lambda h, r: (_rename(h, str.upper), r, {}),
    "spaced headers": lambda h, r: (_rename(h, _spaced), r, {}),
    "upper-cased values": lambda h, r: (h, _upper_values(r, h), {}),
    "1/0 flags": lambda h, r: (h, _flags_as_numbers(r, h), {}),
    "true/false flags": lambda h, r: (h, _flags_as_bools(r, h), {}),
    "stray whitespace": lambda h, r: (h, _padded(r, h), {}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_ingest_like_the_real_file(
    variant: str,
    telco: tuple[list[str], list[list[str]]],
    baseline: pd.DataFrame,
    settings: Settings,
    tmp_path: Path,
) -> None:
    header, rows, style = VARIANTS[variant](*telco)
    path = write_rows(tmp_path / "variant.csv", header, rows, **style)  # type: ignore[arg-type]
    report = run(path, settings)
    assert (report.read, report.accepted, report.quarantined) == (N, N, 0), report.violations
    pd.testing.assert_frame_equal(wide(settings), baseline)


def test_extra_columns_and_shuffled_order(
    telco: tuple[list[str], list[list[str]]], baseline: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    order = list(range(len(header)))
    random.Random(7).shuffle(order)
    new_header = ["Notes", *(header[i] for i in order), "region", "Notes"]
    new_rows = [[f"note {n}", *(r[i] for i in order), "EU", "x"] for n, r in enumerate(rows)]
    report = run(write_rows(tmp_path / "shuffled.csv", new_header, new_rows), settings)
    assert report.accepted == N
    assert report.extra_columns == ("Notes", "region", "Notes")
    pd.testing.assert_frame_equal(wide(settings), baseline)


def test_semicolon_delimited_export(
    telco: tuple[list[str], list[list[str]]], baseline: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    path = write_csv(path=tmp_path / "semi.csv", header=header, rows=rows, delimiter=";")
    assert run(path, settings).accepted == N
    pd.testing.assert_frame_equal(wide(settings), baseline)


def test_without_churn_column_writes_features_only(
    telco: tuple[list[str], list[list[str]]], settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    i = header.index("Churn")
    path = write_rows(
        tmp_path / "scoring.csv", header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows]
    )
    report = run(path, settings)
    assert not report.with_labels
    assert set(report.sources) == {"profile", "account", "services"}
    assert not (settings.sources_dir / "labels").exists()
    assert len(wide(settings, labels=False)) == N


def test_blank_lines_are_skipped_not_counted(
    telco: tuple[list[str], list[list[str]]], settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    path = tmp_path / "blank.csv"
    write_rows(path, header, rows[:100])
    path.write_text(path.read_text().replace("\n", "\n\n", 3) + "\n\n")
    report = run(path, settings)
    assert (report.read, report.accepted) == (100, 100)


# ---------------------------------------------------------------- bad rows


def _set(row: list[str], header: list[str], name: str, value: str) -> None:
    row[header.index(name)] = value


def test_bad_rows_are_quarantined_with_their_reasons(
    telco: tuple[list[str], list[list[str]]], settings: Settings, tmp_path: Path
) -> None:
    header, all_rows = telco
    rows = [list(r) for r in all_rows[:300]]
    # row index i in `rows` is record number i + 2 in the file (header is record 1)
    rows[0][header.index("Contract")] = "Monthly"
    rows[1][header.index("MonthlyCharges")] = "-5"
    rows[2][header.index("tenure")] = "twelve"
    rows[3][header.index("customerID")] = "  "
    rows[4][header.index("Churn")] = "maybe"
    rows[5][header.index("tenure")] = "3.5"
    _set(rows[6], header, "TotalCharges", " ")  # tenure > 0
    assert int(rows[6][header.index("tenure")]) > 0
    # several problems in one row: all of them are reported
    _set(rows[7], header, "gender", "X")
    _set(rows[7], header, "SeniorCitizen", "2")
    _set(rows[7], header, "TotalCharges", "1e9")
    # conflicting duplicate: same id, different contract -> both rows go
    rows[8] = list(rows[9])
    _set(
        rows[8],
        header,
        "Contract",
        "Two year" if rows[9][header.index("Contract")] != "Two year" else "One year",
    )
    # exact duplicate (after normalisation): first kept, the copy quarantined
    rows.append([v.lower() if i != 0 else v for i, v in enumerate(rows[20])])
    rows[-1][header.index("PaymentMethod")] = rows[20][header.index("PaymentMethod")]
    copy_record = len(rows) + 1
    path = write_rows(tmp_path / "bad.csv", header, rows)
    # a row with one value too many and one too few (appended as raw lines)
    with path.open("a") as handle:
        handle.write(",".join(all_rows[400]) + ",oops\n")
        handle.write(",".join(all_rows[401][:-2]) + "\n")
    extra_record, short_record = copy_record + 1, copy_record + 2

    report = run(path, settings)

    reasons = reasons_by_row(report)
    expected = {
        2: ["Contract: 'Monthly' is not an allowed value"],
        3: ["MonthlyCharges: '-5' is out of range"],
        4: ["tenure: 'twelve' is not a number"],
        5: ["customerID: is blank"],
        6: ["Churn: 'maybe' is not a yes/no value"],
        7: ["tenure: '3.5' is not a whole number"],
        8: ["TotalCharges: is blank but tenure is not 0"],
        9: [
            "gender: 'X' is not an allowed value",
            "SeniorCitizen: '2' is not a yes/no value",
            "TotalCharges: '1e9' is out of range",
        ],
        10: ["is on rows 10, 11 with different values"],
        11: ["is on rows 10, 11 with different values"],
        copy_record: ["repeats row 22"],
        extra_record: ["has 22 values but the header has 21", "'oops'"],
        short_record: ["has 19 values but the header has 21"],
    }
    assert set(reasons) == set(expected)
    for record, fragments in expected.items():
        for fragment in fragments:
            assert fragment in reasons[record], (record, reasons[record])
    assert len(reasons_of(reasons[9])) == 3
    # every reason names a fix after the problem
    assert all("; " in r for text in reasons.values() for r in reasons_of(text))
    # counts add up
    assert report.read == len(rows) + 2
    assert report.quarantined == len(expected)
    assert report.read == report.accepted + report.quarantined
    # quarantine keeps the original raw text
    q = quarantine(report).set_index(pd.Index(quarantine(report)["_row"].astype(int)))
    assert q.loc[5, "customerID"] == "  "
    assert q.loc[8, "TotalCharges"] == " "
    # the accepted rows are exactly what's in the parquet
    good_ids = {r[0] for i, r in enumerate(rows) if i + 2 not in expected}
    assert rows[20][0] in good_ids  # the first of two identical rows is kept
    assert rows[8][0] not in good_ids  # conflicting rows are all quarantined
    assert set(wide(settings)[JOIN_KEY]) == good_ids
    assert len(wide(settings)) == report.accepted
    # the summary counts rows per field and rule
    summary = {(v.field, v.code): v.rows for v in report.violations}
    assert summary[("contract", "unknown_category")] == 1
    assert summary[(JOIN_KEY, "duplicate_conflict")] == 2
    assert summary[(JOIN_KEY, "duplicate_copy")] == 1
    assert summary[("row", "wrong_field_count")] == 2
    assert summary[("total_charges", "blank_with_tenure")] == 1
    assert sum(summary.values()) == len(expected) + 2  # row 9 broke three rules


def test_file_concatenated_twice_keeps_one_copy(
    telco: tuple[list[str], list[list[str]]], baseline: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    report = run(write_rows(tmp_path / "twice.csv", header, rows + rows), settings)
    assert (report.read, report.accepted, report.quarantined) == (2 * N, N, N)
    assert [(v.field, v.code, v.rows) for v in report.violations] == [(JOIN_KEY, "duplicate_copy", N)]
    q = quarantine(report)
    assert q["_row"].astype(int).tolist() == list(range(N + 2, 2 * N + 2))
    assert (
        q["_reasons"].iloc[0]
        == f"customerID: {rows[0][0]!r} repeats row 2; delete the repeated line (the first copy is kept)"
    )
    pd.testing.assert_frame_equal(wide(settings), baseline)


def test_every_row_bad_still_writes_and_reports(
    telco: tuple[list[str], list[list[str]]], settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    broken = [[*r[:-1], "perhaps"] for r in rows[:50]]
    report = run(write_rows(tmp_path / "allbad.csv", header, broken), settings)
    assert (report.read, report.accepted, report.quarantined) == (50, 0, 50)
    assert len(quarantine(report)) == 50
    assert len(read_source(sources_dir=settings.sources_dir, name="labels")) == 0


# ---------------------------------------------------------------- file-level errors


def test_missing_columns_are_all_named(
    telco: tuple[list[str], list[list[str]]], settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    drop = {header.index("TotalCharges"), header.index("Contract")}
    keep = [i for i in range(len(header)) if i not in drop]
    path = write_rows(
        tmp_path / "cols.csv", [header[i] for i in keep], [[r[i] for i in keep] for r in rows[:10]]
    )
    with pytest.raises(DataFileError) as caught:
        run(path, settings)
    assert set(caught.value.missing) == {"TotalCharges", "Contract"}
    assert "TotalCharges" in str(caught.value)
    assert "Contract" in str(caught.value)
    assert "rename" in str(caught.value)
    assert not settings.sources_dir.exists()


def test_no_customer_id_column(
    telco: tuple[list[str], list[list[str]]], settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    path = write_rows(tmp_path / "noid.csv", header[1:], [r[1:] for r in rows[:10]])
    with pytest.raises(DataFileError, match="no customer id column") as caught:
        run(path, settings)
    assert caught.value.missing == ("customerID",)


def test_two_columns_for_one_field(
    telco: tuple[list[str], list[list[str]]], settings: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    path = write_rows(tmp_path / "twice.csv", ["customer_id", *header], [[r[0], *r] for r in rows[:10]])
    with pytest.raises(DataFileError, match="'customer_id', 'customerID' all mean customerID"):
        run(path, settings)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"PAR1\x00\x15\x04\x15\x01", "binary"),
        (b"\xff\xfe\x00c\x00u\x00s", "not UTF-8"),
        (b"hello world\nthis is not a csv\n", "missing required column"),
    ],
)
def test_unusable_files(content: bytes, message: str, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=message):
        run(path, settings)


def test_header_only_and_missing_file(
    telco: tuple[list[str], list[list[str]]], settings: Settings, tmp_path: Path
) -> None:
    header, _ = telco
    with pytest.raises(DataFileError, match="no data rows"):
        run(write_rows(tmp_path / "head.csv", header, []), settings)
    with pytest.raises(DataFileError, match="no such file"):
        run(tmp_path / "absent.csv", settings)
    with pytest.raises(DataFileError, match="cannot be read"):
        run(tmp_path, settings)


def test_header_aliases_are_unambiguous() -> None:
    for col in FEATURES:
        keys = [header_key(c) for c in col.categories]
        assert len(set(keys)) == len(keys), col.name
    assert ALIASES[header_key("Customer ID")] == JOIN_KEY
    assert ALIASES[header_key("senior_citizen")] == "senior_citizen"
    assert ALIASES[header_key("Total Charges")] == "total_charges"


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli_home(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("CHURNOPS_HOME", str(settings.home))
    monkeypatch.setenv("CHURNOPS_PROJECT", settings.project)
    return settings


def test_cli_json(generated_csv: Path, cli_home: Settings) -> None:
    result = CliRunner().invoke(
        app, ["data", "ingest", str(generated_csv), "--as-of", "2024-06-30T00:00:00Z", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["read"], payload["accepted"], payload["quarantined"]) == (N, N, 0)
    # Nothing quarantined: no header-only quarantine file (issue 10.11).
    assert payload["quarantine_path"] is None
    assert not (cli_home.quarantine_dir / f"{PART}.csv").exists()
    assert len(read_source(sources_dir=cli_home.sources_dir, name="labels")) == N


def test_cli_table_summary(
    telco: tuple[list[str], list[list[str]]], cli_home: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    rows = [list(r) for r in rows[:20]]
    rows[3][header.index("Contract")] = "Weekly"
    path = write_rows(tmp_path / "some.csv", header, rows)
    result = CliRunner().invoke(app, ["data", "ingest", str(path), "--as-of", "2024-06-30T02:00:00+02:00"])
    assert result.exit_code == 0, result.output
    assert "quarantined" in result.stdout
    assert "unknown_category" in result.stdout
    assert (cli_home.quarantine_dir / f"{PART}.csv").exists()


def test_cli_unusable_file_exits_2_without_traceback(
    telco: tuple[list[str], list[list[str]]], cli_home: Settings, tmp_path: Path
) -> None:
    header, rows = telco
    path = write_rows(tmp_path / "cols.csv", header[:-3], [r[:-3] for r in rows[:5]])
    result = CliRunner().invoke(app, ["data", "ingest", str(path), "--as-of", "2024-06-30T00:00:00Z"])
    assert result.exit_code == 2
    assert "MonthlyCharges" in result.stderr
    assert "TotalCharges" in result.stderr
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, DataFileError)
    json_result = CliRunner().invoke(
        app, ["data", "ingest", str(path), "--as-of", "2024-06-30T00:00:00Z", "--json"]
    )
    assert json_result.exit_code == 2
    assert "TotalCharges" in json.loads(json_result.stdout)["error"]


@pytest.mark.parametrize("as_of", ["2024-06-30T00:00:00", "2024-06-30", "yesterday"])
def test_cli_rejects_as_of_without_offset(as_of: str, generated_csv: Path, cli_home: Settings) -> None:
    result = CliRunner().invoke(app, ["data", "ingest", str(generated_csv), "--as-of", as_of])
    assert result.exit_code == 2
    assert "2024-06-30T00:00:00Z" in result.stderr
    assert not cli_home.sources_dir.exists()


# ---------------------------------------------------------------- property


CORRUPTIONS: dict[str, tuple[str, str]] = {
    "category": ("Contract", "Fortnightly"),
    "flag": ("Partner", "perhaps"),
    "negative": ("MonthlyCharges", "-0.01"),
    "text in number": ("tenure", "n/a"),
    "huge": ("TotalCharges", "1e12"),
    "blank id": ("customerID", ""),
    "label": ("Churn", "unknown"),
    "blank flag": ("Dependents", " "),
}


def _assert_schema(frame: pd.DataFrame) -> None:
    for col in FEATURES:
        values = frame[col.name]
        if col.kind == "category":
            assert values.isin(col.categories).all(), col.name
        elif col.kind == "flag":
            assert values.isin([0, 1]).all(), col.name
        else:
            assert values.notna().all(), col.name
            assert (values >= col.minimum).all(), col.name
            assert (values <= col.maximum).all(), col.name
    assert frame[JOIN_KEY].str.len().gt(0).all()
    assert frame[JOIN_KEY].is_unique
    assert frame[LABEL].isin([0, 1]).all()


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    picks=st.lists(
        st.tuples(st.integers(min_value=0, max_value=59), st.sampled_from(sorted(CORRUPTIONS))), max_size=15
    )
)
def test_property_random_corruption(
    picks: list[tuple[int, str]], telco: tuple[list[str], list[list[str]]]
) -> None:
    header, all_rows = telco
    rows = [list(r) for r in all_rows[:60]]
    corrupted: set[int] = set()
    for index, kind in picks:
        name, value = CORRUPTIONS[kind]
        rows[index][header.index(name)] = value
        corrupted.add(index + 2)
    with tempfile.TemporaryDirectory() as tmp:
        home = Settings(home=Path(tmp) / "home", _env_file=None)
        report = run(write_rows(Path(tmp) / "c.csv", header, rows), home)
        assert report.read == report.accepted + report.quarantined == 60
        assert set(reasons_by_row(report)) == corrupted
        frame = wide(home)
        assert len(frame) == report.accepted
        _assert_schema(frame)
        assert column("tenure").kind == "int"
