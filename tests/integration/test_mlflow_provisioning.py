"""deploy/mlflow/provision_users.py (compose's mlflow-init) against a real basic-auth MLflow
server: the serving user gets READ on the registered model only, and a rerun is harmless."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.mlflow_server import mlflow_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "mlflow" / "provision_users.py"


def test_mlflow_init_provisions_a_read_only_serving_user(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    with mlflow_server(
        backend_store_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifacts_destination=str(tmp_path / "artifacts"),
        workdir=tmp_path,
        env={},
    ) as server:
        password = secrets.token_hex(12)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "MLFLOW_TRACKING_URI": server.url,
            **server.admin_environment(),
            "MLFLOW_SERVING_USERNAME": "serving",
            "MLFLOW_SERVING_PASSWORD": password,
            "CHURNOPS_MODEL_NAME": "churn",
        }
        for _ in range(2):  # idempotent: compose runs it on every start
            done = subprocess.run(
                [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
        admin = (server.admin_username or "", server.admin_password or "")
        created = httpx.post(
            f"{server.url}/api/2.0/mlflow/registered-models/create", json={"name": "churn"}, auth=admin
        )
        assert created.status_code == 200, created.text
        reader = ("serving", password)
        got = httpx.get(
            f"{server.url}/api/2.0/mlflow/registered-models/get", params={"name": "churn"}, auth=reader
        )
        assert got.status_code == 200, got.text
        # Read-only: it can neither move aliases nor see other models.
        alias = httpx.post(
            f"{server.url}/api/2.0/mlflow/registered-models/alias",
            json={"name": "churn", "alias": "production", "version": "1"},
            auth=reader,
        )
        assert alias.status_code == 403, alias.text
        httpx.post(
            f"{server.url}/api/2.0/mlflow/registered-models/create", json={"name": "other"}, auth=admin
        )
        other = httpx.get(
            f"{server.url}/api/2.0/mlflow/registered-models/get", params={"name": "other"}, auth=reader
        )
        assert other.status_code == 403, other.text
        anonymous = httpx.get(f"{server.url}/api/2.0/mlflow/registered-models/get", params={"name": "churn"})
        assert anonymous.status_code == 401
