"""`churnops serve`: start the BentoML service (serving.service:ChurnService) in the foreground."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer


def serve(
    port: int = typer.Option(3000, "--port", help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 in a container)."),
) -> None:
    """Serve churn predictions: POST /predict {"customer_ids": [...]}, POST /predict_features.

    Configuration comes from CHURNOPS_* variables (home, Redis, MLflow, CHURNOPS_SERVING_API_KEY);
    the service follows the model at the registry's `production` alias without a restart.
    """
    project = Path(__file__).resolve().parents[2]
    argv = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:ChurnService",
        "--host",
        host,
        "--port",
        str(port),
    ]
    from churnops.settings import Settings

    settings = Settings()
    # Run from the project root so `serving` is importable; the home is resolved here, against
    # the caller's directory, and handed on absolute. The rest of the environment passes through.
    env = {
        **os.environ,
        "CHURNOPS_HOME": str(settings.home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")])),
        # BentoML 1.4 trips pydantic 2.11+ deprecation warnings on every start; keep the log readable.
        "PYTHONWARNINGS": os.environ.get(
            "PYTHONWARNINGS",
            "ignore::DeprecationWarning:_bentoml_sdk.io_models,ignore::DeprecationWarning:_bentoml_impl.server.app",
        ),
    }
    try:
        code = subprocess.call(argv, cwd=project, env=env)  # noqa: S603 - fixed argv
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code=code)
