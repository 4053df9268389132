"""A real ``mlflow server`` for tests, started the way docker-compose.yml starts it.

PostgreSQL backend store, artifacts proxied to S3 (``--artifacts-destination``), and optionally
MLflow's ``basic-auth`` app with its own user database and the admin password taken from
``MLFLOW_AUTH_ADMIN_PASSWORD`` (MLflow ships none; the config file holds no secret). The
server reaches S3 only through the environment the caller passes.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.s3_server import free_ports

ADMIN = "admin"


class MlflowServerError(RuntimeError):
    """The server exited or /health did not answer in time (the message carries its log tail)."""


@dataclass(frozen=True)
class MlflowServer:
    """A running server: its URL, and the admin credentials when basic auth is on."""

    url: str
    admin_username: str | None
    admin_password: str | None
    log_path: Path

    def admin_environment(self) -> dict[str, str]:
        """``MLFLOW_TRACKING_USERNAME/PASSWORD`` for the admin (empty without auth)."""
        if self.admin_username is None or self.admin_password is None:
            return {}
        return {
            "MLFLOW_TRACKING_USERNAME": self.admin_username,
            "MLFLOW_TRACKING_PASSWORD": self.admin_password,
        }


def auth_config(*, path: Path, database_uri: str, default_permission: str) -> Path:
    """Write the basic-auth ini (``mlflow/server/auth/basic_auth.ini`` keys); no password in it."""
    path.write_text(
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        # Each request otherwise re-runs the PBKDF2 password check (a serving replica polls
        # the alias every few seconds): cache successful checks for a minute.
        "auth_cache_ttl_seconds = 60\n"
    )
    return path


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@contextmanager
def mlflow_server(
    *,
    backend_store_uri: str,
    artifacts_destination: str,
    workdir: Path,
    env: dict[str, str],
    basic_auth: bool = True,
    default_permission: str = "NO_PERMISSIONS",
    timeout_s: float = 150.0,
) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free loopback port until the block exits.

    With ``basic_auth`` the ``basic-auth`` app runs with its user store in ``workdir`` and a
    random admin password handed over in ``MLFLOW_AUTH_ADMIN_PASSWORD`` only.
    """
    import httpx

    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    args = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts_destination,
    ]
    server_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURNOPS_", "AWS_"))}
    server_env.update(env)
    server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # GenAI job runners: not used here
    password: str | None = None
    if basic_auth:
        password = secrets.token_hex(16)
        ini = auth_config(
            path=workdir / "basic_auth.ini",
            database_uri=f"sqlite:///{workdir / 'basic_auth.db'}",
            default_permission=default_permission,
        )
        args += ["--app-name", "basic-auth"]
        server_env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        server_env["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
        server_env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)  # CSRF for the auth app
    log_path = workdir / "mlflow-server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        args, cwd=workdir, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise MlflowServerError(f"mlflow server exited with {process.returncode}: {_tail(log_path)}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise MlflowServerError(
                    f"mlflow server not healthy after {timeout_s:.0f} s: {_tail(log_path)}"
                )
            time.sleep(0.25)
        yield MlflowServer(
            url=url,
            admin_username=ADMIN if basic_auth else None,
            admin_password=password,
            log_path=log_path,
        )
    finally:
        import signal

        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
