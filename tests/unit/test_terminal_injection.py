"""User text reaches the terminal inert: rich markup, ANSI/OSC escapes, controls (issue 12.4)."""

from __future__ import annotations

import io
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from churnops.commands.common import plain_text, safe_text
from churnops.commands.registry import app
from registry_ext import InvalidInputError
from registry_ext.records import MAX_ACTOR_CHARS, MAX_REASON_CHARS, require_label
from registry_ext.tables import model_transitions
from tests.support.registry import make_registry, model_name_for, register_candidate, shared_sqlite_store

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
HOSTILE = [
    "[/bold]",
    "[/]",
    "[link=https://evil.example]click[/link]",
    "trailing backslash \\",
    "\\[escaped]",
    "\x1b[2J\x1b[31mred",
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\",
    "\x1b]0;title\x07",
    "line\rover",
    "two\nlines",
    "\u202eevil\u202c",
    ":smile: :x:",
    "\x9b31m",
]
# Text built from the pieces that matter: markup brackets, backslashes, colons, controls, bidi.
hostile_text = st.text(
    alphabet=st.sampled_from(
        [*list("[]/\\:=#@ab x"), "\x1b", "\x07", "\r", "\n", "\t", "\x00", "\x9b", "\x7f"]
    )
    | st.sampled_from(sorted(BIDI))
    | st.characters(),
    max_size=40,
)


def invisible(char: str) -> bool:
    """The oracle: what a terminal would act on instead of show."""
    return unicodedata.category(char) == "Cc" or char in BIDI


def expected_plain(value: str) -> str:
    out = []
    for char in value:
        if not invisible(char):
            out.append(char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        else:
            out.append(f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}")
    return "".join(out)


JOINER = "\u2060"  # WORD JOINER: safe_text inserts it (invisible) to defuse markup and emoji codes


def rendered(markup: str, *, joiners: bool = False) -> str:
    """What rich prints for ``markup``; without the word joiners unless ``joiners``."""
    console = Console(file=io.StringIO(), width=400, color_system=None, legacy_windows=False)
    console.print(markup, soft_wrap=True, end="")
    output = str(console.file.getvalue())  # type: ignore[attr-defined]
    return output if joiners else output.replace(JOINER, "")


@settings(max_examples=400, deadline=None)
@given(value=hostile_text)
# A value's own word joiners are ordinary (printable, zero-width) text: they must survive, and
# only the ones safe_text adds may be dropped when comparing (the oracle once dropped them all).
@example(value=JOINER)
@example(value="a\u2060b\\")
@example(value="\\\u2060[/bold]")
@example(value=":smile\u2060: :smile:")
def test_safe_text_prints_the_value_literally_and_nothing_invisible(value: str) -> None:
    assert plain_text(value) == expected_plain(value)
    added = safe_text(value).count(JOINER) - value.count(JOINER)
    assert added >= 0
    for template in ("{}", "[bold]{}[/bold]", "x {} [red]y[/red]"):
        shown = rendered(template.format(safe_text(value)), joiners=True)
        assert shown.count(JOINER) == value.count(JOINER) + added  # the value's own ones kept
        assert expected_plain(value).replace(JOINER, "") in shown.replace(JOINER, "")
        if not added:  # nothing inserted: the value's text, joiners included, literally
            assert expected_plain(value) in shown
        assert not any(invisible(char) for char in shown)


@pytest.mark.parametrize("value", HOSTILE)
def test_each_known_attack_is_rendered_inert(value: str) -> None:
    shown = rendered(f"[bold]{safe_text(value)}[/bold]")
    assert shown == expected_plain(value)
    assert "\x1b" not in shown


@settings(max_examples=300, deadline=None)
@given(value=hostile_text)
def test_audit_labels_refuse_controls_and_keep_everything_else(value: str) -> None:
    stripped = value.strip()
    if not stripped:
        with pytest.raises(InvalidInputError, match="must not be empty"):
            require_label(value, "reason", max_chars=MAX_REASON_CHARS)
    elif any(invisible(char) for char in stripped):
        with pytest.raises(InvalidInputError, match="reason contains the control character U\\+"):
            require_label(value, "reason", max_chars=MAX_REASON_CHARS)
    else:
        assert require_label(value, "reason", max_chars=MAX_REASON_CHARS) == stripped


def test_audit_labels_are_bounded() -> None:
    assert require_label("a" * MAX_ACTOR_CHARS, "actor", max_chars=MAX_ACTOR_CHARS)
    with pytest.raises(
        InvalidInputError, match=f"actor is 129 characters long; the limit is {MAX_ACTOR_CHARS}"
    ):
        require_label("a" * (MAX_ACTOR_CHARS + 1), "actor", max_chars=MAX_ACTOR_CHARS)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def cli(
    store: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any]:
    registry, experiment_id = make_registry(store[0], store[1], model_name=model_name_for(request))
    register_candidate(registry, experiment_id=experiment_id, seed=1)
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", store[0])
    monkeypatch.setenv("CHURNOPS_MODEL_NAME", registry.model_name)
    monkeypatch.setenv("CHURNOPS_ACTOR", "cli-user")
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    return registry, lambda *args: runner.invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reason", "ok\x1b[31m"], "reason contains the control character U+001B at position 3"),
        (["--reason", "a\nb"], "reason contains the control character U+000A"),
        (["--reason", "x" * (MAX_REASON_CHARS + 1)], f"the limit is {MAX_REASON_CHARS:,}"),
        (["--reason", "x", "--actor", "eve\x07"], "actor contains the control character U+0007"),
        (["--reason", "x", "--actor", "e" * 200], f"the limit is {MAX_ACTOR_CHARS}"),
    ],
)
def test_promote_refuses_control_characters_and_long_labels(
    cli: tuple[Any, Any], args: list[str], message: str
) -> None:
    _registry, run = cli
    result = run("promote", "1", "--stage", "Staging", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "Traceback" not in result.output


def test_hostile_rows_already_in_the_audit_trail_print_inert(cli: tuple[Any, Any]) -> None:
    """Rows written before validation existed (append-only: they stay) must not break or
    steer the terminal in audit, show, list or promote output."""
    registry, run = cli
    markup_reason = "[/bold] closes [link=https://evil.example]nothing[/link] \\"
    assert run("promote", "1", "--stage", "Staging", "--reason", markup_reason).exit_code == 0
    with registry.engine.begin() as conn:
        for reason in HOSTILE:
            conn.execute(
                model_transitions.insert().values(
                    name=registry.model_name,
                    version=1,
                    from_stage="Staging",
                    to_stage="Staging",
                    actor="\x1b]0;pwned\x07mallory",
                    reason=reason,
                    trigger="manual",
                    time=datetime.now(UTC),
                )
            )
    for args in (["audit"], ["show", "1"], ["list"], ["audit", "--version", "1"]):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
        text = result.stdout
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", text), (args, text)
    audit = run("audit").stdout.replace(JOINER, "")
    assert "[/bold] closes [link=https://evil.example]nothing[/link]" in audit
    assert "\\x1b]0;pwned\\x07mallory" in audit
