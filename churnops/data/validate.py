"""Checking a Telco-shaped table of strings against the column contract in ``churnops.contracts.columns``.

Two levels, because they fail differently: a header that lacks a required column makes the whole
file unusable (``DataFileError``), while a bad value only quarantines its row. Row checks run
column by column over whole arrays (Python only touches the few distinct values of a flag or
category column), and every check runs on every row, so a row's reasons list all its problems.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnops.contracts.columns import FEATURES, JOIN_KEY, KIND_TYPES, LABEL, TELCO_ID, TELCO_LABEL, Column
from churnops.contracts.ids import ID_FIX, MAX_ID_LENGTH, id_problem

Mask = npt.NDArray[np.bool_]

MAX_FIELD_CHARS = 256
"""Longest value of any column we read (Telco values are short); a longer one quarantines its row."""
QUOTED_CHARS = 40
"""How much of a bad value a quarantine reason quotes."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Any value the id rule refuses contains one of these, or is too long, or starts badly (RE2).
_NOT_ID = rf"[^\x21-\x7e]|^[^0-9A-Za-z]|^.{{{MAX_ID_LENGTH + 1}}}"


def quote_value(value: str) -> str:
    """``repr`` of a value for a reason: control characters escaped, long values cut short."""
    if len(value) <= QUOTED_CHARS:
        return repr(value)
    return f"{value[:QUOTED_CHARS]!r}... ({len(value):,} characters)"


# Accepted spellings of a yes/no value, compared after stripping and case-folding.
FLAG_VALUES: Mapping[str, int] = {
    **dict.fromkeys(("yes", "y", "true", "1", "1.0"), 1),
    **dict.fromkeys(("no", "n", "false", "0", "0.0"), 0),
}
FLAG_FIX = "use Yes/No, 1/0 or true/false"
REASON_SEPARATOR = " | "


class DataFileError(ValueError):
    """The file as a whole cannot be ingested (unreadable, not CSV, required columns missing).

    The message names every problem and its fix; ``missing`` lists the absent columns by their
    Telco header so callers can act on them.
    """

    def __init__(self, message: str, *, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


def header_key(text: str) -> str:
    """Spelling-insensitive form of a header or category: 'Total Charges' -> 'totalcharges'."""
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def _aliases() -> dict[str, str]:
    """Header key -> schema field, from the schema's own names and the Telco headers."""
    table: dict[str, str] = {header_key(JOIN_KEY): JOIN_KEY, header_key(TELCO_ID): JOIN_KEY}
    table[header_key(TELCO_LABEL)] = LABEL
    table[header_key(LABEL)] = LABEL
    for col in FEATURES:
        table[header_key(col.name)] = col.name
        table[header_key(col.telco)] = col.name
    return table


ALIASES: Mapping[str, str] = _aliases()
TELCO_HEADERS: Mapping[str, str] = {
    JOIN_KEY: TELCO_ID,
    LABEL: TELCO_LABEL,
    **{c.name: c.telco for c in FEATURES},
}


@dataclass(frozen=True)
class HeaderMap:
    """Where each schema field sits in the file, and what the file has besides."""

    positions: Mapping[str, int]  # schema field -> column position in the file
    headers: Mapping[str, str]  # schema field -> header as spelled in the file
    extra: tuple[str, ...]  # headers that match nothing (ignored)

    @property
    def with_labels(self) -> bool:
        return LABEL in self.positions


def match_header(*, header: Sequence[str], source: str) -> HeaderMap:
    """Map a file's header onto the schema, or raise a DataFileError naming every problem."""
    positions: dict[str, int] = {}
    seen: dict[str, list[str]] = {}
    extra: list[str] = []
    for position, name in enumerate(header):
        field = ALIASES.get(header_key(name))
        if field is None:
            extra.append(name)
            continue
        seen.setdefault(field, []).append(name)
        positions.setdefault(field, position)
    problems: list[str] = []
    for field, names in seen.items():
        if len(names) > 1:
            spelled = ", ".join(repr(n) for n in names)
            problems.append(f"columns {spelled} all mean {TELCO_HEADERS[field]}; keep exactly one of them")
    required = [JOIN_KEY, *(c.name for c in FEATURES)]
    missing = [f for f in required if f not in positions]
    if JOIN_KEY in missing:
        problems.append(
            f"no customer id column: add a column named {TELCO_ID!r} (or 'customer_id') "
            "holding each customer's id"
        )
    feature_missing = [f for f in missing if f != JOIN_KEY]
    if feature_missing:
        extra_keys = {header_key(n): n for n in extra}
        named = []
        for field in feature_missing:
            text = TELCO_HEADERS[field]
            close = difflib.get_close_matches(header_key(text), list(extra_keys), n=1, cutoff=0.75)
            if close:
                text += f" (found {extra_keys[close[0]]!r}: rename it)"
            named.append(text)
        problems.append(
            f"missing required column(s): {', '.join(named)}. Add them, or rename the header to the "
            "Telco names (case, spaces and underscores don't matter: 'TotalCharges', "
            "'Total Charges' and 'total_charges' all work)"
        )
    if problems:
        raise DataFileError(
            f"{source}: cannot ingest: " + "; ".join(problems) + ".",
            missing=[TELCO_HEADERS[f] for f in missing],
        )
    headers = {field: header[pos] for field, pos in positions.items()}
    return HeaderMap(positions=positions, headers=headers, extra=tuple(extra))


@dataclass(frozen=True)
class Encoded:
    """One column as distinct stripped strings plus a code per row.

    Checks run once per distinct value and are broadcast with the codes, so a million rows of
    a column with three categories cost three lookups and one numpy take, and no per-row
    Python strings are made.
    """

    codes: npt.NDArray[np.intp]
    uniques: npt.NDArray[np.object_]

    @classmethod
    def from_arrow(cls, array: pa.ChunkedArray | pa.Array) -> Encoded:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        encoded = pc.dictionary_encode(pc.utf8_trim_whitespace(array))
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp)
        return cls(codes=codes, uniques=encoded.dictionary.to_numpy(zero_copy_only=False).astype(object))

    @classmethod
    def from_strings(cls, values: Sequence[str]) -> Encoded:
        return cls.from_arrow(pa.array(list(values), type=pa.string()))

    def __len__(self) -> int:
        return len(self.codes)

    def blank(self) -> Mask:
        return np.asarray(self.uniques == "", dtype=bool)[self.codes]

    def text(self, rows: npt.NDArray[np.intp] | None = None) -> npt.NDArray[np.object_]:
        """The stripped strings of ``rows`` (all rows if None)."""
        return self.uniques[self.codes if rows is None else self.codes[rows]]

    def lookup(
        self, function: Callable[[str], object], *, dtype: npt.DTypeLike = object, fill: object = None
    ) -> tuple[npt.NDArray[Any], Mask]:
        """``function`` applied once per distinct value (``fill`` where it returns None), as an
        array of ``dtype``; also the mask of rows where it did not return None."""
        found = [function(str(u)) for u in self.uniques]
        mapped = np.empty(len(found), dtype=dtype)
        mapped[:] = [fill if v is None else v for v in found]
        known = np.array([v is not None for v in found], dtype=bool)
        return mapped[self.codes], known[self.codes]

    def numbers(self) -> npt.NDArray[np.float64]:
        """Each row parsed as a number (NaN where it is not one)."""
        parsed = pd.to_numeric(pd.Series(self.uniques, dtype=object), errors="coerce")
        return parsed.to_numpy(dtype=np.float64, na_value=np.nan)[self.codes]


@dataclass(frozen=True)
class ViolationCount:
    """How many rows broke one rule on one field."""

    field: str  # schema name
    column: str  # header as spelled in the file
    code: str
    rows: int
    fix: str


class Violations:
    """Collects every violation of every row; nothing short-circuits."""

    def __init__(self, *, rows: int) -> None:
        self._rows = rows
        self._parts: list[pd.Series] = []
        self._counts: dict[tuple[str, str, str], int] = {}
        self._fixes: dict[tuple[str, str, str], str] = {}

    def add(
        self,
        *,
        field: str,
        column: str,
        code: str,
        mask: Mask,
        what: str,
        fix: str,
        values: Encoded | None = None,
    ) -> None:
        """Record rule ``code`` broken on ``mask``; the row's reason quotes its value if given."""
        hits = np.flatnonzero(mask)
        if hits.size == 0:
            return
        if values is None:
            messages = pd.Series(what, index=hits, dtype=object)
        else:
            messages = pd.Series(values.text(hits), index=hits, dtype=object).map(quote_value) + f" {what}"
        self.add_messages(field=field, column=column, code=code, messages=messages, fix=fix)

    def add_messages(self, *, field: str, column: str, code: str, messages: pd.Series, fix: str) -> None:
        """Record a rule whose message differs per row (``messages`` indexed by row position)."""
        if messages.empty:
            return
        key = (field, column, code)
        self._counts[key] = self._counts.get(key, 0) + len(messages)
        self._fixes[key] = fix
        self._parts.append(f"{column}: " + messages.astype(str) + f"; {fix}")

    def bad(self) -> Mask:
        mask = np.zeros(self._rows, dtype=bool)
        for part in self._parts:
            mask[part.index.to_numpy(dtype=np.int64)] = True
        return mask

    def reasons(self) -> pd.Series:
        """One string per bad row (indexed by row position), its reasons in check order."""
        if not self._parts:
            return pd.Series([], dtype=object)
        joined: pd.Series = pd.concat(self._parts).groupby(level=0, sort=True).agg(REASON_SEPARATOR.join)
        return joined

    def counts(self) -> tuple[ViolationCount, ...]:
        """Rows per (field, rule), most frequent first."""
        items = sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(
            ViolationCount(field=f, column=c, code=code, rows=n, fix=self._fixes[(f, c, code)])
            for (f, c, code), n in items
        )


@dataclass(frozen=True)
class Validated:
    """Typed values for every row (meaningless where the row is bad) and what was wrong."""

    values: Mapping[str, npt.NDArray[np.generic]]  # customer_id, features, churned (if labelled)
    bad: Mask
    reasons: pd.Series  # row position -> reasons joined by REASON_SEPARATOR
    violations: tuple[ViolationCount, ...]
    filled_total_charges: int  # accepted rows whose blank TotalCharges (tenure 0) became 0.0


def _category_lookup(col: Column) -> Callable[[str], object]:
    table = {header_key(c): c for c in col.categories}
    return lambda raw: table.get(header_key(raw))


def _flag_lookup(raw: str) -> object:
    return FLAG_VALUES.get(raw.casefold())


def _check_flag(
    *, values: Encoded, field: str, column: str, out: Violations
) -> tuple[npt.NDArray[np.int64], Mask]:
    """Yes/No-style column -> 1/0, and the mask of rows whose value was understood."""
    missing = values.blank()
    mapped, ok = values.lookup(_flag_lookup, dtype=np.int64, fill=0)
    out.add(field=field, column=column, code="missing", mask=missing, what="is blank", fix=FLAG_FIX)
    out.add(
        field=field,
        column=column,
        code="bad_flag",
        mask=~ok & ~missing,
        what="is not a yes/no value",
        fix=FLAG_FIX,
        values=values,
    )
    return mapped, ok


def _check_category(
    *, col: Column, values: Encoded, column: str, out: Violations
) -> tuple[npt.NDArray[np.object_], Mask]:
    """Category column -> canonical spelling, and the mask of rows whose value was understood."""
    fix = "use one of " + ", ".join(col.categories)
    missing = values.blank()
    mapped, ok = values.lookup(_category_lookup(col))
    out.add(field=col.name, column=column, code="missing", mask=missing, what="is blank", fix=fix)
    out.add(
        field=col.name,
        column=column,
        code="unknown_category",
        mask=~ok & ~missing,
        what="is not an allowed value",
        fix=fix,
        values=values,
    )
    return mapped, ok


def _check_number(
    *, col: Column, values: Encoded, column: str, out: Violations, allow_blank: Mask | None = None
) -> tuple[npt.NDArray[np.float64], Mask, Mask]:
    """Numeric column -> float values, the mask of good rows, and the blanks taken as 0."""
    low = col.minimum if col.minimum is not None else -np.inf
    high = col.maximum if col.maximum is not None else np.inf
    whole = col.kind == "int"
    fix = f"write a {'whole ' if whole else ''}number between {low:g} and {high:g}"
    blank = values.blank()
    number = values.numbers()
    finite = np.isfinite(number)
    with np.errstate(invalid="ignore"):
        fraction = finite & (np.mod(number, 1.0) != 0) if whole else np.zeros_like(finite)
        outside = finite & ((number < low) | (number > high))
    allowed = blank & allow_blank if allow_blank is not None else np.zeros_like(blank)
    if allow_blank is None:
        out.add(field=col.name, column=column, code="missing", mask=blank, what="is blank", fix=fix)
    else:
        out.add(
            field=col.name,
            column=column,
            code="blank_with_tenure",
            mask=blank & ~allow_blank,
            what="is blank but tenure is not 0",
            fix="fill in the amount billed so far (blank is accepted only for new customers, tenure 0)",
        )
    for code, mask, what in (
        ("not_a_number", ~finite & ~blank, "is not a number"),
        ("not_whole", fraction, "is not a whole number"),
        ("out_of_range", outside, "is out of range"),
    ):
        out.add(field=col.name, column=column, code=code, mask=mask, what=what, fix=fix, values=values)
    ok = (finite & ~fraction & ~outside) | allowed
    return np.where(allowed, 0.0, number), ok, allowed


def _per_value(values: Encoded, problem: Callable[[str], str | None], *, suspect: str) -> pd.Series:
    """``quoted value + problem`` for every row whose value has one (indexed by row position).

    ``suspect`` (a regular expression the distinct values are matched against, vectorised)
    picks the few values ``problem`` is asked about, so a million distinct ids cost one pass of
    pyarrow, not a million Python calls.
    """
    flagged = pc.match_substring_regex(pa.array(values.uniques, type=pa.string()), suspect)
    candidates = np.flatnonzero(flagged.to_numpy(zero_copy_only=False))
    found: dict[int, str] = {}
    for position in candidates:
        raw = str(values.uniques[position])
        why = problem(raw)
        if why is not None:
            found[int(position)] = f"{quote_value(raw)} {why}"
    if not found:
        return pd.Series([], dtype=object)
    texts = np.full(len(values.uniques), None, dtype=object)
    for at, text in found.items():
        texts[at] = text
    hits = np.flatnonzero(np.isin(values.codes, np.fromiter(found, dtype=np.intp)))
    return pd.Series(texts[values.codes[hits]], index=hits, dtype=object)


def _check_id(*, ids: Encoded, column: str, out: Violations) -> None:
    """The contracts' id rule (the one serving applies): a bad id quarantines its row."""
    messages = _per_value(ids, lambda raw: None if raw == "" else id_problem(raw), suspect=f"^$|{_NOT_ID}")
    out.add_messages(field=JOIN_KEY, column=column, code="bad_id", messages=messages, fix=ID_FIX)


def _control_problem(raw: str) -> str | None:
    bad = _CONTROL.search(raw)
    if bad is None:
        return None
    char = bad.group(0)
    if char in "\r\n":
        return "contains a line break (an unbalanced quote earlier on the line?)"
    return f"contains the control character U+{ord(char):04X}"


def _check_text(*, values: Encoded, field: str, column: str, out: Violations) -> None:
    """Every column: no control characters (a NUL inside 'Ma\\x00le' is not 'Male'), bounded length."""
    out.add_messages(
        field=field,
        column=column,
        code="control_character",
        messages=_per_value(values, _control_problem, suspect=r"[\x00-\x1f\x7f-\x9f]"),
        fix="remove the control character (export the file again as plain text)",
    )
    out.add_messages(
        field=field,
        column=column,
        code="too_long",
        messages=_per_value(
            values,
            lambda raw: (
                f"is longer than {MAX_FIELD_CHARS} characters" if len(raw) > MAX_FIELD_CHARS else None
            ),
            suspect=f"^(?s:.){{{MAX_FIELD_CHARS + 1}}}",
        ),
        fix=f"values are at most {MAX_FIELD_CHARS} characters: check the column is the right one",
    )


def _row_list(rows: pd.Series) -> str:
    shown = ", ".join(str(r) for r in rows.iloc[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def _check_duplicates(
    *,
    columns: Mapping[str, Encoded],
    typed: Mapping[str, npt.NDArray[np.generic]],
    understood: Mapping[str, Mask],
    rownum: npt.NDArray[np.int64],
    column: str,
    out: Violations,
) -> None:
    """Same id on several rows: identical copies keep the first row; conflicting rows all go.

    Identity is judged on normalised values (so ' yes' and 'Yes' agree): an exact repeat is a
    harmless export glitch, but two different records for one customer leave no way to know
    which is true, so none of them is accepted.
    """
    ids = columns[JOIN_KEY]
    per_id = np.bincount(ids.codes, minlength=len(ids.uniques))
    dup = (per_id[ids.codes] > 1) & ~ids.blank()
    if not dup.any():
        return
    positions = np.flatnonzero(dup)
    # normalised value where it was understood, the raw text where it was not
    canonical = pd.DataFrame(
        {
            name: np.where(
                understood[name][positions], result[positions].astype(str), columns[name].text(positions)
            )
            for name, result in typed.items()
        }
    )
    hashes = pd.util.hash_pandas_object(canonical, index=False).to_numpy()
    group = pd.DataFrame(
        {"id": ids.text(positions), "hash": hashes, "row": rownum[positions]}, index=positions
    )
    distinct = group.groupby("id", sort=False)["hash"].transform("nunique").to_numpy()
    conflict = group[distinct > 1]
    rows_of = conflict.groupby("id", sort=False)["row"].agg(_row_list)
    out.add_messages(
        field=JOIN_KEY,
        column=column,
        code="duplicate_conflict",
        messages=conflict["id"].map(quote_value)
        + " is on rows "
        + conflict["id"].map(rows_of)
        + " with different values",
        fix="keep one row per customer",
    )
    same = group[(distinct == 1)]
    copies = same[same.duplicated("id", keep="first")]
    first_row = same.drop_duplicates("id", keep="first").set_index("id")["row"]
    out.add_messages(
        field=JOIN_KEY,
        column=column,
        code="duplicate_copy",
        messages=copies["id"].map(quote_value) + " repeats row " + copies["id"].map(first_row).astype(str),
        fix="delete the repeated line (the first copy is kept)",
    )


def validate_rows(
    *, columns: Mapping[str, Encoded], header: HeaderMap, rownum: npt.NDArray[np.int64]
) -> Validated:
    """Check every row: ``columns`` holds one Encoded column per schema field in the file.

    ``rownum`` is each row's 1-based record number in the file (header = 1), used in messages.
    """
    rows = len(rownum)
    out = Violations(rows=rows)
    typed: dict[str, npt.NDArray[np.generic]] = {}
    understood: dict[str, Mask] = {}

    def keep(field: str, result: npt.NDArray[np.generic], ok: Mask) -> None:
        typed[field] = result
        understood[field] = ok

    ids = columns[JOIN_KEY]
    id_column = header.headers[JOIN_KEY]
    blank_id = ids.blank()
    out.add(
        field=JOIN_KEY,
        column=id_column,
        code="missing",
        mask=blank_id,
        what="is blank",
        fix="give every row its customer id",
    )
    _check_id(ids=ids, column=id_column, out=out)
    for field, values in columns.items():
        _check_text(values=values, field=field, column=header.headers[field], out=out)
    keep(JOIN_KEY, ids.text(), ~blank_id)
    tenure_zero: Mask | None = None
    filled: Mask = np.zeros(rows, dtype=bool)
    for col in FEATURES:
        values = columns[col.name]
        column = header.headers[col.name]
        if col.kind == "flag":
            keep(col.name, *_check_flag(values=values, field=col.name, column=column, out=out))
        elif col.kind == "category":
            keep(col.name, *_check_category(col=col, values=values, column=column, out=out))
        else:
            allow = tenure_zero if col.name == "total_charges" else None
            number, ok, filled_here = _check_number(
                col=col, values=values, column=column, out=out, allow_blank=allow
            )
            filled |= filled_here
            if col.name == "tenure":
                tenure_zero = ok & (number == 0)
            keep(col.name, np.where(ok, number, 0).astype(KIND_TYPES[col.kind].pandas), ok)
    if header.with_labels:
        keep(LABEL, *_check_flag(values=columns[LABEL], field=LABEL, column=header.headers[LABEL], out=out))
    _check_duplicates(
        columns=columns, typed=typed, understood=understood, rownum=rownum, column=id_column, out=out
    )
    bad = out.bad()
    return Validated(
        values=typed,
        bad=bad,
        reasons=out.reasons(),
        violations=out.counts(),
        filled_total_charges=int((filled & ~bad).sum()),
    )
