"""`churnops serve`: run the BentoML service (``serving.service:ChurnService``) in the foreground.

The service process gets exactly the settings resolved here (environment, ``.env`` in the
caller's directory, defaults), passed as ``CHURNOPS_*`` variables, and runs in the home
directory, so where it is started from does not change what it does. It imports the installed
``serving`` package (no checkout paths). SIGTERM / SIGINT are forwarded to the server, which
drains and flushes the prediction log; if it has not exited after the grace period it is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churnops.commands.common import load_settings

if TYPE_CHECKING:
    from churnops.settings import Settings

GRACE_SECONDS = 20.0
# BentoML 1.4 trips pydantic 2.11+ deprecation warnings on every start; keep the log readable.
QUIET_WARNINGS = (
    "ignore::DeprecationWarning:_bentoml_sdk.io_models,ignore::DeprecationWarning:_bentoml_impl.server.app"
)


def settings_environment(settings: Settings) -> dict[str, str]:
    """``CHURNOPS_*`` variables that make another process resolve exactly ``settings``."""
    from pydantic import SecretStr

    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value: Any = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"CHURNOPS_{name.upper()}"] = str(value)
    return env


def bentoml_home(settings: Settings, port: int) -> Path:
    """This service's own BentoML home (its Prometheus multiprocess files live there)."""
    return settings.layout.bentoml(port)


def serve(
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 3000,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (127.0.0.1; 0.0.0.0 in a container).")
    ] = "127.0.0.1",
) -> None:
    """Serve churn predictions: POST /predict {"customer_ids": [...]}, POST /predict_features.

    Configuration comes from CHURNOPS_* variables (home, Redis, MLflow, CHURNOPS_SERVING_API_KEY);
    the service follows the model at the registry's `production` alias without a restart.
    """
    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "bentoml", "serve", "serving.service:ChurnService"]
    argv += ["--host", host, "--port", str(port)]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
    env = {
        **inherited,
        **settings_environment(settings),
        # BentoML wipes <BENTOML_HOME>/prometheus_multiproc_dir when it starts: one directory per
        # service (home and port), or two services on a host wipe each other's counters.
        "BENTOML_HOME": os.environ.get("BENTOML_HOME") or str(bentoml_home(settings, port)),
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", QUIET_WARNINGS),
    }
    child = subprocess.Popen(argv, cwd=settings.home, env=env, start_new_session=True)  # noqa: S603

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:
                forward(signal.SIGINT, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            try:
                child.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    raise typer.Exit(code=0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code)
