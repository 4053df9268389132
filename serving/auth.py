"""Optional API key: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

API_KEY_HEADER = b"x-api-key"


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries (ASGI raw headers, lower-case names), if any."""
    for name, value in headers:
        if name == API_KEY_HEADER:
            return value.strip()
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
    return None


def authorized(*, expected: bytes | None, presented: bytes | None) -> bool:
    """True when no key is configured, or the presented key matches (hmac.compare_digest)."""
    if expected is None:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(expected, presented)
