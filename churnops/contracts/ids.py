"""The one customer-id rule: what serving accepts, ingestion stores and the generator makes.

An id is 1 to ``MAX_ID_LENGTH`` printable ASCII characters without spaces, starting with a
letter or digit. That refuses whitespace, tabs, NUL and every other control character,
non-ASCII look-alikes, ids too long to be keys, and spreadsheet formula values (a leading
``=``, ``+``, ``-`` or ``@``). Telco ids look like ``7590-VHVEG``.
"""

from __future__ import annotations

import re

MAX_ID_LENGTH = 64
ID_PATTERN = rf"^[0-9A-Za-z][\x21-\x7e]{{0,{MAX_ID_LENGTH - 1}}}$"
"""The rule as a regular expression (pydantic ``StringConstraints``, pyarrow ``match_substring_regex``)."""
ID_FIX = (
    f"use 1-{MAX_ID_LENGTH} printable ASCII characters without spaces, starting with a letter or "
    "digit (like 7590-VHVEG)"
)

_ID = re.compile(ID_PATTERN)


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a customer id (None when it is one)."""
    if _ID.fullmatch(value):
        return None
    if not value:
        return "is blank"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value):,} characters long (the limit is {MAX_ID_LENGTH})"
    if not value[0].isascii() or not value[0].isalnum():
        return "does not start with a letter or digit"
    return "has a space, a control or a non-ASCII character"


def is_customer_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None
