"""Telco churn CSV -> Feast sources, with every rejected row quarantined and explained.

A Telco export is a snapshot with no time axis, so the caller stamps it with ``as_of``; the
part file is named after that time, which makes re-ingesting the same snapshot idempotent.

Decisions (also in the report and the tests):
- Blank ``TotalCharges`` with tenure 0 is a new customer who has not been billed yet: accepted
  as 0.0 and counted in ``filled_total_charges``. Blank with any other tenure is quarantined.
- A customer id on several rows: exact copies (after normalisation) keep the first row and
  quarantine the repeats; rows that disagree are all quarantined, since none can be trusted.
- A row with the wrong number of fields is quarantined (raw values placed by position).
  Blank lines are skipped and not counted; values may not contain line breaks.
- ``_row`` in the quarantine file is the 1-based record number, the header being row 1 (the line
  number, when the file has no blank lines).
- An unbalanced quote makes the CSV reader join the following lines into one record: that record
  is quarantined with a reason naming the quote, its record and column and how many lines it
  swallowed. A value with a control character (a NUL, a line break) or longer than
  ``MAX_FIELD_CHARS``, and an id outside the contracts' id rule, quarantine their row only.
- Quarantine CSVs are opened in spreadsheets, so every value that starts with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return (OWASP's CSV-injection rule), or with ``'``, is written
  with one leading ``'``: a spreadsheet shows it as text, and the original is the value with that
  first ``'`` removed (:func:`original_value`).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from churnops.contracts.clock import current_time
from churnops.contracts.columns import CREATED_TS, EVENT_TS
from churnops.contracts.sources import write_sources
from churnops.contracts.timestamps import parse_utc
from churnops.data.validate import (
    REASON_SEPARATOR,
    DataFileError,
    Encoded,
    HeaderMap,
    ViolationCount,
    match_header,
    validate_rows,
)

__all__ = [
    "DataFileError",
    "IngestReport",
    "ViolationCount",
    "ingest_telco",
    "neutralise_formula",
    "original_value",
    "part_name",
]

_DELIMITERS = (",", ";", "\t", "|")
_BLOCK = 1 << 20  # pyarrow's default read block; a longer field needs a larger one
_FORMULA = r"^[=+\-@\t\r']"


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion did: counts (read == accepted + quarantined) and where things went."""

    path: Path
    as_of: datetime
    part: str
    read: int
    accepted: int
    quarantined: int
    quarantine_path: Path | None  # None: nothing was quarantined, so no file was written
    violations: tuple[ViolationCount, ...]
    sources: Mapping[str, Path]
    with_labels: bool
    columns: Mapping[str, str]  # schema field -> header as spelled in the file
    extra_columns: tuple[str, ...]  # ignored
    filled_total_charges: int  # blank TotalCharges of tenure-0 customers accepted as 0.0
    seconds: float = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``--json`` output)."""
        return {
            "path": str(self.path),
            "as_of": self.as_of.isoformat(),
            "part": self.part,
            "read": self.read,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "quarantine_path": None if self.quarantine_path is None else str(self.quarantine_path),
            "violations": [
                {"field": v.field, "column": v.column, "code": v.code, "rows": v.rows, "fix": v.fix}
                for v in self.violations
            ],
            "sources": {name: str(p) for name, p in self.sources.items()},
            "with_labels": self.with_labels,
            "columns": dict(self.columns),
            "extra_columns": list(self.extra_columns),
            "filled_total_charges": self.filled_total_charges,
            "seconds": round(self.seconds, 3),
        }


def part_name(as_of: datetime) -> str:
    """The source part (and quarantine file) name for a snapshot time."""
    return f"telco-{as_of.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _read_header(path: Path) -> tuple[list[str], str]:
    """The header fields and the delimiter, or a DataFileError saying why there are none."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file; check the path") from None
    except UnicodeDecodeError:
        raise DataFileError(
            f"{path}: is not UTF-8 text (a spreadsheet or compressed file?); export it as 'CSV UTF-8'"
        ) from None
    except OSError as error:
        raise DataFileError(
            f"{path}: cannot be read ({error.strerror}); check the path and permissions"
        ) from None
    if "\x00" in first:
        raise DataFileError(f"{path}: is not a text CSV file (binary content); export it as 'CSV UTF-8'")
    if not first.strip():
        raise DataFileError(
            f"{path}: is empty or starts with a blank line; the first line must be the Telco header "
            "(customerID,gender,SeniorCitizen,...)"
        )
    delimiter = max(_DELIMITERS, key=first.count)
    if first.count(delimiter) == 0:
        delimiter = ","
    header = next(csv.reader([first.rstrip("\r\n")], delimiter=delimiter))
    return [h.strip() for h in header], delimiter


@dataclass(frozen=True)
class _Malformed:
    number: int | None
    text: str
    fields: int


def _read_rows(path: Path, *, width: int, delimiter: str) -> tuple[pa.Table, list[_Malformed], list[int]]:
    """Every data row as strings; rows with the wrong field count come back separately.

    Returns the table, the malformed rows and the record numbers of skipped blank lines.
    Single-threaded so pyarrow can number the rows it rejects.
    """
    names = [f"c{i}" for i in range(width)]
    malformed: list[_Malformed] = []
    blank: list[int] = []

    def on_invalid(row: Any) -> str:
        if not row.text.strip(" \t\r\n" + delimiter):
            if row.number is not None:
                blank.append(int(row.number))
        else:
            malformed.append(_Malformed(row.number, row.text, int(row.actual_columns)))
        return "skip"

    try:
        path.stat()
    except OSError as error:
        raise DataFileError(f"{path}: cannot be read ({error}); check the path and permissions") from None
    block = _BLOCK
    while True:
        try:
            table = _read_blocks(path, names=names, delimiter=delimiter, on_invalid=on_invalid, block=block)
        except _BlockTooSmall:
            # One field longer than a block (a 10 MB value): read again with a block that holds
            # it, so only that row is quarantined (too_long), not the whole file.
            malformed.clear()
            blank.clear()
            block *= 8
            continue
        return table, malformed, blank


class _BlockTooSmall(Exception):
    """A value does not fit in pyarrow's read block."""


def _read_blocks(
    path: Path, *, names: list[str], delimiter: str, on_invalid: Callable[[Any], str], block: int
) -> pa.Table:
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, use_threads=False, block_size=block
            ),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        text = str(error)
        if "straddl" in text and block <= path.stat().st_size:
            raise _BlockTooSmall from None
        if "UTF8" in text or "utf8" in text.lower():
            raise DataFileError(
                f"{path}: is not UTF-8 text past the header; export it as 'CSV UTF-8'"
            ) from None
        raise DataFileError(f"{path}: is not a readable CSV ({text}); check quoting and delimiters") from None
    except OSError as error:
        raise DataFileError(f"{path}: cannot be read ({error}); check the path and permissions") from None


def _row_numbers(*, rows: int, skipped: list[int]) -> npt.NDArray[np.int64]:
    """Record numbers (header = 1) of the rows pyarrow kept, from those it skipped."""
    numbers = np.arange(2, 2 + rows + len(skipped), dtype=np.int64)
    if skipped:
        numbers = numbers[~np.isin(numbers, np.asarray(skipped, dtype=np.int64))]
    if len(numbers) != rows:  # pyarrow could not number a skipped row: fall back to positions
        numbers = np.arange(2, 2 + rows, dtype=np.int64)
    return numbers


def _quarantine_frame(
    *,
    raw: pa.Table,
    header: list[str],
    bad: npt.NDArray[np.bool_],
    reasons: pd.Series,
    rownum: npt.NDArray[np.int64],
    malformed: list[_Malformed],
    delimiter: str,
) -> pd.DataFrame:
    """Rejected rows with their original (unstripped) values, ``_row`` and ``_reasons``."""
    positions = np.flatnonzero(bad)
    columns = [*header, "_row", "_reasons"]
    kept = raw.take(pa.array(positions, type=pa.int64())).to_pandas()
    frame = pd.DataFrame(kept.to_numpy(dtype=object), columns=header)
    # positional assignment: header names may repeat among the ignored extra columns
    frame.insert(len(header), "_row", rownum[positions])
    frame.insert(len(header) + 1, "_reasons", reasons.reindex(positions).to_numpy(dtype=object))
    if malformed:
        width = len(header)
        records = []
        for row in malformed:
            fields = next(csv.reader([row.text], delimiter=delimiter), [])
            folded = _folded_reason(row, header=header, delimiter=delimiter)
            if folded is not None:
                reason = folded
            elif len(fields) > width:
                surplus = ", ".join(repr(v) for v in fields[width:])
                reason = (
                    f"row: has {len(fields)} values but the header has {width} (extra: {surplus}); "
                    f"quote values that contain {delimiter!r} or remove the extra values"
                )
            else:
                reason = (
                    f"row: has {len(fields)} values but the header has {width}; add the missing values "
                    f"(an empty value still needs its {delimiter!r})"
                )
            padded = (fields + [""] * width)[:width]
            records.append([*padded, row.number if row.number is not None else -1, reason])
        extra = pd.DataFrame(records, columns=columns)
        frame = pd.concat([frame, extra], ignore_index=True) if len(frame) else extra
    frame.columns = pd.Index(columns)
    return frame.sort_values("_row", kind="stable").reset_index(drop=True)


def _folded_reason(row: _Malformed, *, header: list[str], delimiter: str) -> str | None:
    """The reason for a record that an unbalanced quote made span several lines (else None)."""
    lines = row.text.splitlines()
    if len(lines) < 2 or '"' not in row.text:
        return None
    first = lines[0]
    at = first.find('"')
    if at < 0:
        return None
    field = first[:at].count(delimiter)
    name = header[field] if field < len(header) else f"value {field + 1}"
    where = f"record {row.number}" if row.number is not None else "a record"
    return (
        f"row: an unbalanced quote ('\"') at {where}, character {at + 1} (column {name!r}) joins the "
        f"next {len(lines) - 1:,} line(s) into this row; close the quote or remove it"
    )


def neutralise_formula(value: object) -> object:
    """OWASP CSV-injection rule: a string starting with ``= + - @``, tab, CR (or ``'``) gets one
    leading ``'`` so a spreadsheet shows it as text; :func:`original_value` undoes it."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r", "'"):
        return "'" + value
    return value


def original_value(cell: str) -> str:
    """A quarantine CSV cell back to the value the source file held."""
    return cell[1:] if cell.startswith("'") else cell


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    safe = frame.map(neutralise_formula)  # cell by cell: header names may repeat
    safe.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)


def ingest_telco(
    *, path: Path, as_of: datetime, sources_dir: Path, quarantine_dir: Path, now: datetime | None = None
) -> IngestReport:
    """Validate a Telco churn CSV, quarantine the bad rows and write the good ones as Feast sources.

    ``now`` (default: the wall clock) stamps the rows' ``created`` time.

    Raises DataFileError when the file as a whole is unusable; bad rows never raise.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError(f"as_of {as_of.isoformat()} has no UTC offset; pass a tz-aware datetime")
    as_of = parse_utc(as_of, field="as_of")  # the sane range the stores handle, or a clear refusal
    started = time.perf_counter()
    stamp = pd.Timestamp(as_of).tz_convert("UTC")
    part = part_name(as_of)
    header, delimiter = _read_header(path)
    mapping: HeaderMap = match_header(header=header, source=str(path))
    table, malformed, blank = _read_rows(path, width=len(header), delimiter=delimiter)
    skipped = sorted([*blank, *(m.number for m in malformed if m.number is not None)])
    rownum = _row_numbers(rows=table.num_rows, skipped=skipped)
    if table.num_rows == 0 and not malformed:
        raise DataFileError(f"{path}: has a header but no data rows; export the customer rows too")

    columns = {name: Encoded.from_arrow(table.column(pos)) for name, pos in mapping.positions.items()}
    checked = validate_rows(columns=columns, header=mapping, rownum=rownum)

    keep = ~checked.bad
    accepted = pd.DataFrame({name: array[keep] for name, array in checked.values.items()})
    accepted.insert(1, EVENT_TS, stamp)
    accepted.insert(2, CREATED_TS, pd.Timestamp(current_time(now)))
    accepted[EVENT_TS] = accepted[EVENT_TS].astype("datetime64[us, UTC]")
    accepted[CREATED_TS] = accepted[CREATED_TS].astype("datetime64[us, UTC]")
    sources = write_sources(
        frame=accepted, sources_dir=sources_dir, part=part, with_labels=mapping.with_labels
    )

    quarantine = _quarantine_frame(
        raw=table,
        header=header,
        bad=checked.bad,
        reasons=checked.reasons,
        rownum=rownum,
        malformed=malformed,
        delimiter=delimiter,
    )
    target = quarantine_dir / f"{part}.csv"
    if len(quarantine):
        _write_csv(quarantine, target)
    else:  # no header-only file; a re-ingest of this snapshot that is now clean drops the old one
        target.unlink(missing_ok=True)
    quarantine_path = target if len(quarantine) else None

    violations = checked.violations
    if malformed:
        row_rule = ViolationCount(
            field="row",
            column="row",
            code="wrong_field_count",
            rows=len(malformed),
            fix="make every row have as many values as the header",
        )
        violations = tuple(sorted((*violations, row_rule), key=lambda v: -v.rows))
    return IngestReport(
        path=path,
        as_of=stamp.to_pydatetime(),
        part=part,
        read=table.num_rows + len(malformed),
        accepted=len(accepted),
        quarantined=int(checked.bad.sum()) + len(malformed),
        quarantine_path=quarantine_path,
        violations=violations,
        sources=sources,
        with_labels=mapping.with_labels,
        columns=dict(mapping.headers),
        extra_columns=mapping.extra,
        filled_total_charges=checked.filled_total_charges,
        seconds=time.perf_counter() - started,
    )


def reasons_of(text: str) -> list[str]:
    """Split a quarantine ``_reasons`` cell back into its reasons."""
    return [r for r in text.split(REASON_SEPARATOR) if r]
