"""The one redaction rule for secrets in text a person or a log sees.

:func:`redact` takes any text (a URL, an error message, a log line) and hides

- the credentials of every URL in it: ``scheme://user:secret@host`` -> ``scheme://user:***@host``
  and ``scheme://token@host`` -> ``scheme://***@host`` (a user name alone may be a token, as in
  ``https://TOKEN@github.com``). It works on the text, not on a parser's view of it, so it
  covers every scheme (``redis://``, ``rediss://``, ``postgresql+psycopg://``, ``mysql://``,
  ``http(s)://``, ``s3://`` ...), a Redis Cluster netloc (``redis://:pw@h1:7000,h2:7001``) and
  URLs no parser accepts (``postgresql://u:pw@[bad``, a raw ``@`` or ``/`` in the password):
  everything between ``//`` and the last ``@`` of the URL is the credential part;
- the value of a secret-looking parameter: ``?password=``, ``&token=``, ``sslpassword=``,
  ``access_key=``, ``X-Amz-Signature=`` ..., also in Feast's ``host:port,password=...`` form.

A URL ends at white space, so a password holding a space is not recognised as one (it is not
a URL). Nothing here imports anything heavy: serving and every CLI path can call it.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# scheme://  then the URL up to white space; the credential part ends at its last "@".
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s]*)")
_SECRET_PARAM = re.compile(
    r"(?P<key>(?:^|(?<=[?&;,\s]))[A-Za-z0-9_.\-]*"
    r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|signature|credential|auth)"
    r"[A-Za-z0-9_.\-]*=)(?P<value>[^&;,\s#]*)",
    re.IGNORECASE,
)


def _url(match: re.Match[str]) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    userinfo, at, tail = rest.rpartition("@")
    if not at:
        return match.group(0)
    user, colon, _password = userinfo.partition(":")
    # "user:secret" keeps the user name; a lone "name@" may be a token and is hidden whole.
    shown = f"{user}:{MASK}" if colon and "/" not in user else MASK
    return f"{scheme}{shown}@{tail}"


def _parameter(match: re.Match[str]) -> str:
    return f"{match.group('key')}{MASK}" if match.group("value") else match.group(0)


def redact(text: str) -> str:
    """``text`` with every URL credential and secret parameter value replaced by ``***``."""
    if "://" in text:
        text = _URL.sub(_url, text)
    if "=" in text:
        text = _SECRET_PARAM.sub(_parameter, text)
    return text


class RedactSecrets(logging.Filter):
    """A handler filter that passes every record with its message redacted (:func:`redact`).

    The formatted message replaces ``msg`` (and ``args`` are cleared), so a URL passed as an
    argument is redacted too; the exception text is not part of ``getMessage`` and stays as is.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_log_handlers() -> int:
    """Install :class:`RedactSecrets` on every handler configured now (the root logger's and any
    logger's own): entry points call it once logging is set up. Idempotent; returns how many
    handlers it covers."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    covered = 0
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(RedactSecrets())
            covered += 1
    return covered
