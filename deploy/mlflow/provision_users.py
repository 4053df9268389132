"""One-shot (compose service ``mlflow-init``): the read-only MLflow user serving runs as.

Creates ``MLFLOW_SERVING_USERNAME`` (or resets its password to ``MLFLOW_SERVING_PASSWORD``) and
grants it READ on the registered model ``CHURNOPS_MODEL_NAME`` only, as the MLflow admin
(``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``). Idempotent: safe on every start.
Standard library only; every credential comes from the environment.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request


def call(url: str, path: str, body: dict[str, str], *, auth: str, method: str = "POST") -> tuple[int, str]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"MLFLOW_TRACKING_URI must be http(s)://, got {url!r}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        f"{url}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def main() -> int:
    url = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
    admin = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}"
    auth = base64.b64encode(admin.encode()).decode()
    user, password = os.environ["MLFLOW_SERVING_USERNAME"], os.environ["MLFLOW_SERVING_PASSWORD"]
    model = os.environ.get("CHURNOPS_MODEL_NAME", "churn")
    credentials = {"username": user, "password": password}
    status, text = call(url, "/api/2.0/mlflow/users/create", credentials, auth=auth)
    if status != 200:
        if "RESOURCE_ALREADY_EXISTS" not in text:
            print(f"creating MLflow user {user!r} failed: {status} {text}", file=sys.stderr)
            return 1
        status, text = call(
            url,
            "/api/2.0/mlflow/users/update-password",
            credentials,
            auth=auth,
            method="PATCH",
        )
        if status != 200:
            print(f"setting the password of {user!r} failed: {status} {text}", file=sys.stderr)
            return 1
    grant = {
        "username": user,
        "resource_type": "registered_model",
        "resource_id": model,
        "permission": "READ",
    }
    status, text = call(url, "/api/3.0/mlflow/users/permissions/grant", grant, auth=auth)
    if status != 200 and "RESOURCE_ALREADY_EXISTS" not in text:
        print(f"granting READ on {model!r} to {user!r} failed: {status} {text}", file=sys.stderr)
        return 1
    print(f"MLflow user {user!r} has READ on registered model {model!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
