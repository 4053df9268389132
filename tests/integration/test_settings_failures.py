"""Settings and services that are wrong fail at once, through the real CLI, with rc 2, the
variable's name and the fix, never a traceback (issue 12.10)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from churnops.cli import app
from churnops.settings import Settings
from churnops.wiring import ArtifactLocationError, check_artifact_location, mlflow_client


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a hung host, not a refusing one."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def invoke(tmp_path: Path, args: list[str], **env: str) -> Result:
    base = {"CHURNOPS_HOME": str(tmp_path / "home"), "CHURNOPS_CONNECT_TIMEOUT_S": "1"}
    return CliRunner().invoke(app, args, env={**base, **env})


def assert_refused(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no uncaught error
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        (
            {"CHURNOPS_REDIS_TIMEOUT_MS": "-5"},
            ["CHURNOPS_REDIS_TIMEOUT_MS='-5'", "greater than or equal to 1", "fix:", "default (50)"],
        ),
        ({"CHURNOPS_REDIS_TIMEOUT_MS": "soon"}, ["CHURNOPS_REDIS_TIMEOUT_MS='soon'", "fix:"]),
        (
            {"CHURNOPS_REDIS_URL": "redis://127.0.0.1:6379/abc"},
            ["CHURNOPS_REDIS_URL", "database 'abc'", "redis://host:6379/0"],
        ),
        ({"CHURNOPS_REDIS_URL": "redis://127.0.0.1:port/0"}, ["CHURNOPS_REDIS_URL", "port 'port'"]),
        ({"CHURNOPS_HOME": "/proc/nope"}, ["CHURNOPS_HOME='/proc/nope'", "cannot be created", "fix:"]),
        (
            {"CHURNOPS_MLFLOW_TRACKING_URI": "postgresql://u:hunter2@127.0.0.1:1/db"},
            ["CHURNOPS_MLFLOW_TRACKING_URI", "127.0.0.1:1", "cannot be reached"],
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(
    tmp_path: Path, env: dict[str, str], needles: list[str]
) -> None:
    result = invoke(tmp_path, ["registry", "list"], **env)
    assert_refused(result, *needles)
    assert "hunter2" not in result.output
    assert "validation error for Settings" not in result.output


def prepare_home(tmp_path: Path) -> None:
    """Sources and an applied Feast repo, so the home check lets `features online` reach Redis."""
    for args in (["data", "generate", "--customers", "50", "--months", "2"], ["features", "apply"]):
        done = invoke(tmp_path, args)
        assert done.exit_code == 0, done.output


def test_a_hung_redis_fails_naming_it(tmp_path: Path, silent_port: int) -> None:
    prepare_home(tmp_path)
    result = invoke(
        tmp_path,
        ["features", "online", "7590-VHVEG"],
        CHURNOPS_REDIS_URL=f"redis://127.0.0.1:{silent_port}/0",
    )
    assert_refused(result, f"Redis at 127.0.0.1:{silent_port} (CHURNOPS_REDIS_URL)", "within 1 s")


def test_a_refusing_redis_fails_naming_it(tmp_path: Path) -> None:
    prepare_home(tmp_path)
    result = invoke(
        tmp_path, ["features", "online", "7590-VHVEG", "--json"], CHURNOPS_REDIS_URL="redis://127.0.0.1:1/0"
    )
    assert result.exit_code == 2
    assert '"error": "Redis at 127.0.0.1:1 (CHURNOPS_REDIS_URL)' in result.stdout


def test_a_hung_postgresql_fails_naming_it(tmp_path: Path, silent_port: int) -> None:
    result = invoke(
        tmp_path,
        ["registry", "list"],
        CHURNOPS_MLFLOW_TRACKING_URI=f"postgresql://u:pw@127.0.0.1:{silent_port}/db",
    )
    assert_refused(result, f"127.0.0.1:{silent_port} (CHURNOPS_MLFLOW_TRACKING_URI)", "cannot be reached")


def test_a_hung_mlflow_server_fails_naming_it(tmp_path: Path, silent_port: int) -> None:
    settings = Settings(
        home=tmp_path / "home",
        mlflow_tracking_uri=f"http://127.0.0.1:{silent_port}",
        connect_timeout_s=1,
        _env_file=None,
    )
    with pytest.raises(ConnectionError, match=rf"MLflow server at 127.0.0.1:{silent_port} .* within 1 s"):
        mlflow_client(settings)


def test_a_bad_artifact_root_is_refused_before_the_experiment_exists(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", artifact_root="/proc/nope", _env_file=None)
    client = mlflow_client(settings)
    with pytest.raises(ArtifactLocationError, match=r"CHURNOPS_ARTIFACT_ROOT='/proc/nope': .*\(fix:"):
        check_artifact_location(settings, client=client, experiment="churn")
    assert client.get_experiment_by_name("churn") is None  # nothing was created


def test_an_experiment_whose_location_is_gone_says_how_to_move_on(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", _env_file=None)
    client = mlflow_client(settings)
    experiment_id = client.create_experiment("churn", artifact_location="/proc/nope/churn")
    with pytest.raises(ArtifactLocationError) as info:
        check_artifact_location(settings, client=client, experiment="churn")
    message = str(info.value)
    assert "/proc/nope/churn" in message
    assert f"mlflow experiments rename --experiment-id {experiment_id} --new-name churn-old" in message


def test_train_with_a_bad_artifact_root_exits_2(tmp_path: Path) -> None:
    prepare_home(tmp_path)
    result = invoke(tmp_path, ["train"], CHURNOPS_ARTIFACT_ROOT="/proc/nope")
    assert_refused(result, "CHURNOPS_ARTIFACT_ROOT='/proc/nope'")
