"""What every command shares at its entry point."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from churnops.contracts.log_filters import drop_messages, quiet_known_warnings
from churnops.contracts.redaction import redact

if TYPE_CHECKING:
    from churnops.settings import Settings


def quiet_libraries() -> None:
    """Keep library noise that says nothing to the user off the terminal (entry points only).

    Call it after the heavy imports: feast sets its own warning filters when it is imported.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # With an http:// tracking URI MLflow writes "View run ... at: <url>" to stdout when a run
    # ends, which breaks the one-JSON-object contract of --json.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # mlflow's SQLAlchemy store uses the deprecated noload strategy; ibis calls duckdb's renamed
    # fetch_arrow_table; ... Known and harmless (also filtered in pyproject.toml for tests).
    quiet_known_warnings()
    # MLflow announces at INFO that it creates or upgrades its own tables in a new store.
    drop_messages(
        "mlflow.store.db.utils", ("Creating initial MLflow database tables", "Updating database tables")
    )


# Characters that change what a terminal shows rather than show themselves: C0/C1 controls
# (ESC starts ANSI CSI and OSC sequences, CR rewrites a line, BEL ...), DEL, and the Unicode
# bidirectional overrides and isolates ("Trojan source").
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


_JOINER = "\u2060"
_EMOJI_CODE = re.compile(r":(\S*?):")


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def plain_text(value: object) -> str:
    """``value`` as text a terminal shows as-is: control, escape and bidi characters rendered
    visibly as ``\\x1b``, ``\\n``, ``\\u202e`` (for plain ``typer.echo`` output), and URL
    credentials and secret parameters hidden (:func:`churnops.contracts.redaction.redact`)."""
    return redact(_INVISIBLE.sub(_visible, str(value)))


def safe_text(value: object) -> str:
    """User-supplied ``value`` ready for rich (``console.print``, table cells and titles).

    The one helper every command routes user text through: control and escape characters are
    rendered visibly (:func:`plain_text`), rich markup (``[bold]``, a stray ``[/]``) is escaped
    so it prints literally and cannot crash rendering, and so are emoji codes (``:smile:``).
    """
    from rich._emoji_codes import EMOJI  # rich's own table of the codes it replaces
    from rich.markup import escape

    text = plain_text(value)
    # An invisible word joiner (U+2060) after a trailing backslash keeps it from escaping the
    # caller's next tag (rich's own fix doubles it, which then prints twice), and inside a
    # ``:name:`` rich knows keeps it from becoming an emoji.
    if text.endswith("\\"):
        text += _JOINER

    def defuse(match: re.Match[str]) -> str:
        code = match.group(1)
        name = code.lower().removesuffix("-emoji").removesuffix("-text")
        return f":{_JOINER}{code}:" if name in EMOJI else match.group(0)

    return _EMOJI_CODE.sub(defuse, escape(text)) if ":" in text else escape(text)


def fail(message: str, *, json_output: bool = False) -> typer.Exit:
    """Report a user-facing error (one JSON object with --json, else on stderr) and return the
    exit (code 2) for the caller to raise: a clear message, never a stack trace."""
    if json_output:
        typer.echo(json.dumps({"error": redact(message)}))
    else:
        typer.echo(f"error: {plain_text(message)}", err=True)
    return typer.Exit(code=2)


def _settings_fix(field: str) -> str:
    """What to do about a bad variable: its documented meaning and its default."""
    from churnops.settings import Settings

    info = Settings.model_fields.get(field)
    if info is None:
        return "fix the value or unset it"
    hint = (info.description or "").rstrip(".")
    default = info.get_default(call_default_factory=True)
    reset = "unset it for the default" + (f" ({default})" if default is not None else "")
    return f"{hint}; {reset}" if hint else reset


def settings_problem(error: Exception) -> str:
    """A pydantic ValidationError of Settings as "CHURNOPS_X=value: problem; fix" (all of them)."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return redact(str(error))
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ())) or "settings"
        variable = f"CHURNOPS_{field.upper()}"
        value = item.get("input")
        # Redacted before it is cut to 80 characters: a cut URL must not show half a password.
        shown = "" if value is None or isinstance(value, dict) else f"={redact(str(value))[:80]!r}"
        message = redact(str(item.get("msg", "invalid")).removeprefix("Value error, "))
        problems.append(f"{variable}{shown}: {message} (fix: {_settings_fix(field)})")
    return "invalid settings: " + "; ".join(problems)


def _export_client_credentials() -> None:
    """MLflow and boto3 read their credentials from the process environment only: hand them the
    ones ``.env`` holds (read as Settings reads it), never overriding the real environment."""
    from churnops.settings import ClientCredentials

    for name, value in ClientCredentials().model_dump(exclude_none=True).items():
        os.environ.setdefault(name.upper(), value)


def load_settings(*, json_output: bool = False) -> Settings:
    """``Settings()`` from the environment and ``.env``, or a clear exit 2 naming each bad variable
    (and a home that cannot be written, before anything tries to)."""
    from churnops.settings import Settings

    _export_client_credentials()
    try:
        settings = Settings()
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise fail(settings_problem(error), json_output=json_output) from None
    from churnops.settings import SECRET_ENVIRONMENT, is_placeholder, placeholder_problem

    placeholders = [
        placeholder_problem(name, os.environ[name])
        for name in SECRET_ENVIRONMENT
        if is_placeholder(os.environ.get(name, ""))
    ]
    if placeholders:
        raise fail("invalid settings: " + "; ".join(placeholders), json_output=json_output)
    from churnops.settings import writable_dir_problem

    problem = writable_dir_problem(settings.home)
    if problem is not None:
        raise fail(
            f"CHURNOPS_HOME={str(settings.home)!r}: {problem} (fix: point it at a writable directory, "
            "or unset it for ./.churnops)",
            json_output=json_output,
        )
    return settings


def pinned_now(
    value: str, *, option: str = "--now", json_output: bool = False, wall: datetime | None = None
) -> datetime:
    """A ``--now`` option: an aware UTC time at most a few minutes ahead of the clock (``wall``,
    e.g. ``settings.clock`` for an ``--as-of`` that acts as now; default the real clock), or exit 2."""
    from churnops.contracts.clock import not_in_future
    from churnops.contracts.timestamps import parse_utc

    try:
        return not_in_future(parse_utc(value, field=option), field=option, wall=wall)
    except ValueError as error:  # TimestampValueError, FutureTimeError
        raise fail(str(error), json_output=json_output) from None


def option_time(value: str | None, *, option: str, json_output: bool = False) -> datetime | None:
    """A time option (ISO 8601 with ``Z`` or an offset) as an aware UTC time, or exit 2 naming it."""
    from churnops.contracts.timestamps import parse_utc

    if value is None:
        return None
    try:
        return parse_utc(value, field=option)
    except ValueError as error:
        raise fail(str(error), json_output=json_output) from None
