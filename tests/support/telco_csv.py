"""Generated customers rendered as a Telco-format CSV, so CSV-variant tests need not read (and
re-ingest 7,043 rows of) the shared public file.

The rendering follows the public file: its header spellings and column order, ``customerID``
first and ``Churn`` (``Yes``/``No``) last, ``Yes``/``No`` flags except ``SeniorCitizen`` (``0``/``1``),
charges without trailing zeros, and a single space in ``TotalCharges`` for customers with tenure
0. ``tests/unit/test_ingest.py`` checks that against the real file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from churnops.contracts.columns import EVENT_TS, FEATURES, JOIN_KEY, LABEL, TELCO_ID, TELCO_LABEL, column
from churnops.data.generate import generate_churn_data

# Feature names in the column order of the public file (its headers come from the contract).
_TELCO_ORDER = (
    "gender",
    "senior_citizen",
    "partner",
    "dependents",
    "tenure",
    "phone_service",
    "multiple_lines",
    "internet_service",
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
    "contract",
    "paperless_billing",
    "payment_method",
    "monthly_charges",
    "total_charges",
)
BLANK_TOTAL = " "
"""What the public file holds in TotalCharges for a customer who has not been billed yet."""


def telco_header() -> tuple[str, ...]:
    """The public file's header: customerID, every feature's Telco spelling, Churn."""
    if sorted(_TELCO_ORDER) != sorted(c.name for c in FEATURES):
        raise AssertionError("tests/support/telco_csv.py: _TELCO_ORDER no longer matches FEATURES")
    return (TELCO_ID, *(column(name).telco for name in _TELCO_ORDER), TELCO_LABEL)


@dataclass(frozen=True)
class TelcoTable:
    """A Telco-format table as the csv module reads it: a header and rows of strings."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    new_customers: tuple[str, ...]  # ids rendered with tenure 0 and a blank TotalCharges

    def lists(self) -> tuple[list[str], list[list[str]]]:
        """Fresh mutable copies, so a test that edits rows never changes another test's table."""
        return list(self.header), [list(r) for r in self.rows]


def _money(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def telco_table(*, customers: int, seed: int, new_customers: int = 0) -> TelcoTable:
    """One row per generated customer (their latest monthly snapshot, churned or not), in the
    generator's order; ``new_customers`` of them, spread evenly, are rendered as just joined."""
    if customers < 1:
        raise ValueError(f"customers={customers}: pass at least 1")
    if not 0 <= new_customers <= customers:
        raise ValueError(f"new_customers={new_customers}: pass 0..customers ({customers})")
    frame = generate_churn_data(customers=customers, months=3, seed=seed).frame
    latest = frame.sort_values(EVENT_TS, kind="stable").drop_duplicates(JOIN_KEY, keep="last").sort_index()
    new_at = {(2 * k + 1) * len(latest) // (2 * new_customers) for k in range(new_customers)}
    rows: list[tuple[str, ...]] = []
    new_ids: list[str] = []
    for i, record in enumerate(latest.to_dict("records")):
        values = [str(record[JOIN_KEY])]
        for name in _TELCO_ORDER:
            col, value = column(name), record[name]
            if col.kind == "flag":
                values.append(str(int(value)) if name == "senior_citizen" else ("Yes" if value else "No"))
            elif col.kind == "int":
                values.append("0" if i in new_at else str(int(value)))
            elif col.kind == "float":
                blank = name == "total_charges" and i in new_at
                values.append(BLANK_TOTAL if blank else _money(float(value)))
            else:
                values.append(str(value))
        values.append("Yes" if record[LABEL] else "No")
        if i in new_at:
            new_ids.append(values[0])
        rows.append(tuple(values))
    return TelcoTable(header=telco_header(), rows=tuple(rows), new_customers=tuple(new_ids))


def write_csv(
    *,
    path: Path,
    header: list[str] | tuple[str, ...],
    rows: list[list[str]] | tuple[tuple[str, ...], ...],
    bom: bool = False,
    newline: str = "\n",
    delimiter: str = ",",
) -> Path:
    """Write a table the way exporters do (optional UTF-8 byte-order mark, line end, delimiter)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline, delimiter=delimiter).writerows([header, *rows])
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    return path
