"""No secret is ever printed (issue 16.6): one redaction rule for every URL in every message,
the settings errors and the CLI output that show a configured URL, and serving's log lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from churnops.cli import app
from churnops.commands.common import plain_text, safe_text, settings_problem
from churnops.contracts.redaction import RedactSecrets, redact, redact_log_handlers
from churnops.settings import URL_FIELDS, Settings

PASSWORD = "Pw-9f8e7d6c-s3cret"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:pw@h", "rediss://user:***@h"),
        ("postgresql+psycopg://u:p%40w@h/db", "postgresql+psycopg://u:***@h/db"),
        ("mysql+pymysql://u:pw@h:3306/db", "mysql+pymysql://u:***@h:3306/db"),
        ("https://token123@github.com/x", "https://***@github.com/x"),
        ("s3://AKIA:SECRET@bucket/x", "s3://AKIA:***@bucket/x"),
        ("redis://:pw@h1:7000,h2:7001", "redis://:***@h1:7000,h2:7001"),
        ("postgresql://u:pw@[bad", "postgresql://u:***@[bad"),
        ("bad 'redis://:p/w@h:1/0': fix it", "bad 'redis://:***@h:1/0': fix it"),
        ("http://h:5000/api?token=abc&x=1", "http://h:5000/api?token=***&x=1"),
        (
            "postgresql://h/db?sslpassword=zz&sslmode=require",
            "postgresql://h/db?sslpassword=***&sslmode=require",
        ),
        ("h:6379,db=0,password=sek,ssl=true", "h:6379,db=0,password=***,ssl=true"),
        # nothing secret: unchanged
        ("sqlite:////tmp/home/mlflow.db", "sqlite:////tmp/home/mlflow.db"),
        ("MLflow at http://127.0.0.1:5000 did not answer", "MLflow at http://127.0.0.1:5000 did not answer"),
        ("models:/churn@production", "models:/churn@production"),
        ("mail ops@example.com", "mail ops@example.com"),
    ],
)
def test_redact_forms(text: str, expected: str) -> None:
    assert redact(text) == expected


# --- property: no generated password survives any URL form ------------------------------------

_SCHEMES = (
    "redis",
    "rediss",
    "postgresql",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "mysql",
    "mysql+pymysql",
    "http",
    "https",
    "s3",
)
# Printable ASCII without white space: a password with a space is not part of any URL.
_PASSWORD = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=24)
_USER = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_-."), min_size=0, max_size=8)
SLOT = "\x00PW\x00"
_FORMS = (
    "{scheme}://{user}:" + SLOT + "@db.internal:5432/churn",
    "{scheme}://{user}:" + SLOT + "@db.internal",
    "{scheme}://:" + SLOT + "@h1.internal:7000,h2.internal:7001/0",  # a Redis Cluster netloc
    "{scheme}://{user}:" + SLOT + "@[bad",  # no parser accepts it
    "{scheme}://{user}:" + SLOT + "@db.internal:notaport/x",
)
_MESSAGES = (
    "{url}",
    "error: {url!r} is not a sqlite:// or postgresql:// URL",
    "CHURNOPS_X={url!r}: invalid (fix: see docs)",
    '{{"error": {url_json}}}',
    "reached {url}, then http://other.internal:1 failed",
)


def _leaks(out: str, password: str) -> bool:
    shown = {password, quote(password, safe=""), repr(password)[1:-1], json.dumps(password)[1:-1]}
    return any(form in out for form in shown)


def _message(template: str, url: str) -> str:
    return template.format(url=url, url_json=json.dumps(url))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    password=_PASSWORD,
    user=_USER,
    scheme=st.sampled_from(_SCHEMES),
    form=st.sampled_from(_FORMS),
    message=st.sampled_from(_MESSAGES),
    encoded=st.booleans(),
)
def test_redaction_never_leaks_a_password(
    password: str, user: str, scheme: str, form: str, message: str, encoded: bool
) -> None:
    shown = quote(password, safe="") if encoded else password
    url = form.format(scheme=scheme, user=user).replace(SLOT, shown)
    skeleton = _message(message, form.format(scheme=scheme, user=user).replace(SLOT, ""))
    assume(not _leaks(skeleton, password))  # the password is not also a host name or a word of the text
    out = redact(_message(message, url))
    assert not _leaks(out, password), out
    assert not _leaks(plain_text(_message(message, url)), password)
    assert not _leaks(safe_text(_message(message, url)), password)


@settings(max_examples=200, deadline=None)
@given(
    token=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=6),
    parameter=st.sampled_from(
        ("password", "sslpassword", "token", "access_key", "X-Amz-Signature", "api_key")
    ),
)
def test_token_userinfo_and_secret_parameters_never_leak(token: str, parameter: str) -> None:
    """A lone ``token@`` is hidden whole (it may be a token); parameter values are hidden too."""
    assume(not _leaks("https://@github.com/o/r.git http://h/x?a=1&=&x=1 h:6379,db=0,=", token))
    out = redact(f"https://{token}@github.com/o/r.git")
    assert not _leaks(out, token), out
    for text in (
        f"http://h/x?a=1&{parameter}={quote(token, safe='')}&x=1",
        f"h:6379,db=0,{parameter}={quote(token, safe='')}",  # Feast's connection string
    ):
        out = redact(text)
        assert not _leaks(out, token), out


# --- every settings error with a password in it ------------------------------------------------

BAD_URLS = (
    f"postgresql://u:{PASSWORD}@[bad",
    f"redis://:{PASSWORD}@host:notaport/0",
    f"redis://:{PASSWORD}@h1:7000,h2:x",
    f"rediss://u:{PASSWORD}@host/notadb",
    f"ftp://u:{PASSWORD}@host/x",
    f"http://u:{PASSWORD}@127.0.0.1:1",
    f"mysql://u:{PASSWORD}@127.0.0.1:1/x",
    f"s3://AKIA:{PASSWORD}@bucket/x",
    f"postgresql://u:{PASSWORD.replace('-', '/')}@127.0.0.1:1/x",  # a raw "/" breaks every parser
)


def _variable(field: str) -> str:
    return f"CHURNOPS_{field.upper()}"


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("value", BAD_URLS)
def test_settings_errors_never_show_the_password(
    field: str, value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path))
    monkeypatch.setenv(_variable(field), value)
    monkeypatch.setenv("CHURNOPS_REDIS_TIMEOUT_MS", "0")  # a second error in the same report
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    text = settings_problem(caught.value)
    assert "CHURNOPS_REDIS_TIMEOUT_MS" in text
    assert PASSWORD not in text and PASSWORD.replace("-", "/") not in text, text
    if f"{_variable(field)}=" in text:  # the field's own validator rejected it: shown, redacted
        assert ":***@" in text, text


def test_a_settings_error_shows_the_url_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_REDIS_URL", f"redis://:{PASSWORD}@cache.internal:notaport/0")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    text = settings_problem(caught.value)
    assert "redis://:***@cache.internal:notaport/0" in text
    assert PASSWORD not in text


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field in URL_FIELDS for value in BAD_URLS[:3]]
    + [
        ("mlflow_tracking_uri", f"http://user:{PASSWORD}@127.0.0.1:1"),
        ("registry_database_url", f"postgresql://u:{PASSWORD}@[bad"),
        ("registry_database_url", f"postgresql://u:{PASSWORD}@127.0.0.1:1/x"),
        ("registry_database_url", f"postgresql://u:{PASSWORD.replace('-', '/')}@127.0.0.1:1/x"),
    ],
)
def test_registry_list_never_prints_the_password(
    field: str, value: str, json_output: bool, tmp_path: Path
) -> None:
    """``CHURNOPS_MLFLOW_TRACKING_URI=http://user:secret@host:1 churnops registry list`` and friends."""
    env = {
        "CHURNOPS_HOME": str(tmp_path / "home"),
        "CHURNOPS_CONNECT_TIMEOUT_S": "1",
        # past the "no models here" guard, so the command reaches the database it is given
        "CHURNOPS_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        _variable(field): value,
    }
    result = CliRunner().invoke(app, ["registry", "list", *(["--json"] if json_output else [])], env=env)
    output = result.output
    assert isinstance(result.exception, SystemExit | None), result.exception
    assert "Traceback" not in output
    assert PASSWORD not in output and PASSWORD.replace("-", "/") not in output, output
    if json_output and result.exit_code == 2:
        assert "error" in json.loads(result.stdout)


def test_the_reported_cli_leak_is_closed(tmp_path: Path) -> None:
    """The case of the issue, verbatim: the URL is still named, with its password hidden."""
    env = {
        "CHURNOPS_HOME": str(tmp_path / "home"),
        "CHURNOPS_CONNECT_TIMEOUT_S": "1",
        "CHURNOPS_MLFLOW_TRACKING_URI": "http://user:secret@host:1",
    }
    for args in (["registry", "list"], ["registry", "list", "--json"]):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 2, result.output
        assert "secret" not in result.output
        assert "http://user:***@host:1" in result.output


# --- log lines -----------------------------------------------------------------------------------


def test_log_handlers_redact_every_record(caplog: pytest.LogCaptureFixture) -> None:
    """A URL passed as a log argument (serving's ``logger.warning("...: %s", error)``) is
    redacted by the handler filter entry points install."""
    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        assert redact_log_handlers() >= 1
        assert redact_log_handlers() >= 1  # idempotent: still one filter per handler
        assert sum(isinstance(f, RedactSecrets) for f in handler.filters) == 1
        with caplog.at_level(logging.WARNING, logger="serving.runtime"):
            # caplog's own handler is on the root too; install on it as the entry point would
            redact_log_handlers()
            logging.getLogger("serving.runtime").warning(
                "could not read the production alias: %s", f"connect to postgresql://u:{PASSWORD}@db/x failed"
            )
        assert caplog.records, "the record reached the handlers"
        for record in caplog.records:
            assert PASSWORD not in record.getMessage()
        assert "postgresql://u:***@db/x" in caplog.text
    finally:
        root.removeHandler(handler)


def test_serving_error_bodies_never_show_a_password() -> None:
    """Errors serving answers with (503 bodies carry library messages) are redacted too."""
    from serving.runtime import ApiError

    error = ApiError(503, "model_unavailable", f"MLflow at http://u:{PASSWORD}@mlflow:5000/api failed")
    body = json.dumps(error.body())
    assert PASSWORD not in body and "http://u:***@mlflow:5000/api" in body
