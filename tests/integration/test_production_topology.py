"""The production (compose) topology as local processes, end to end.

What docker-compose.yml runs, without a Docker engine: PostgreSQL (MLflow's backend store,
registry_ext's tables, the Feast SQL registry), a real S3 server (SeaweedFS standing in for
MinIO), ``mlflow server --app-name basic-auth`` on that database with artifacts proxied to S3,
Redis as the online store, ``serving`` as its own process with the environment compose gives
it (``tests.support.topology.serving_environment``, checked against docker-compose.yml by
tests/unit/test_deploy_files.py), the Pushgateway and Prometheus with the repo's scrape config
and alert rules scraping both; every Grafana panel's PromQL must return data from it (Grafana
itself is the one service left out). The CLI runs with the settings a
training container has (``CHURNOPS_MLFLOW_TRACKING_URI=http://...``, the registry database
given separately, the MLflow admin's credentials); serving runs with MLflow credentials of a
user that holds READ on the registered model only, and without any database URL for the
registry: it reads Production through MLflow's REST API alone.
"""

from __future__ import annotations

import gc
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.columns import EVENT_TS, JOIN_KEY
from tests.conftest import POSTGRES_ADMIN_URL, service_missing
from tests.support.mlflow_server import MlflowServer, mlflow_server
from tests.support.postgres import fresh_database
from tests.support.prometheus import (
    RATE_INTERVAL,
    Prometheus,
    Pushgateway,
    binary,
    dashboard_exprs,
    first_data,
    scrape_config,
    send_traffic,
    wait_for,
)
from tests.support.s3_server import WEED_HOW, S3Endpoint, S3Unavailable, weed_s3
from tests.support.samples import drift_document, performance_report
from tests.support.serving_env import Environment, ServiceProcess
from tests.support.signing import signing_key_files
from tests.support.topology import serving_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

BUCKET = "churnops"
MODEL = "churn"
SERVING_USER = "serving"
API_KEY = secrets.token_hex(16)


@dataclass(frozen=True)
class Topology:
    """The running services and the two environments (training CLI, serving) compose gives."""

    s3: S3Endpoint
    mlflow: MlflowServer
    gateway: Pushgateway
    registry_db: str
    training_env: dict[str, str]
    serving_env: dict[str, str]
    work: Path


def _first_snapshot(months: int) -> str:
    """The 1st of the month ``months - 1`` months back, so the newest snapshot is this month's 1st."""
    today = datetime.now(UTC)
    index = today.year * 12 + today.month - 1 - (months - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}-01"


@pytest.fixture
def topology(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[Topology]:
    """S3 + MLflow server with basic auth on a fresh database; the Feast registry in a second one;
    the Pushgateway the monitoring jobs push to."""
    binary("prometheus")  # skip (fail under CI) before building anything
    (tmp_path / "weed").mkdir()
    (tmp_path / "mlflow").mkdir()
    gateway = Pushgateway(workdir=tmp_path / "pushgateway")
    gateway.start()
    try:
        with (
            weed_s3(workdir=tmp_path / "weed", bucket=BUCKET) as s3,
            fresh_database(admin_url=POSTGRES_ADMIN_URL, prefix="churnops_feast") as feast_db,
            # compose keeps the prediction log in MLflow's database; here a database of its own,
            # so the check below (serving is given no URL of the registry's database) stays exact.
            fresh_database(admin_url=POSTGRES_ADMIN_URL, prefix="churnops_predictions") as log_db,
            mlflow_server(
                backend_store_uri=postgres_url,
                artifacts_destination=f"s3://{BUCKET}/mlflow-artifacts",
                workdir=tmp_path / "mlflow",
                env=s3.environment(),
            ) as server,
        ):
            shared = {
                "CHURNOPS_MLFLOW_TRACKING_URI": server.url,
                "CHURNOPS_REDIS_URL": redis_url,
                "CHURNOPS_FEAST_REGISTRY_URL": feast_db,
                "CHURNOPS_ARTIFACT_ROOT": f"s3://{BUCKET}/models",
                "CHURNOPS_MODEL_NAME": MODEL,
                **s3.environment(),
            }
            training = {
                **shared,
                "CHURNOPS_HOME": str(tmp_path / "training-home"),
                "CHURNOPS_REGISTRY_DATABASE_URL": postgres_url,
                "CHURNOPS_ACTOR": "topology-test",
                **server.admin_environment(),
            }
            training["CHURNOPS_PUSHGATEWAY_URL"] = gateway.url
            serving = serving_environment(
                home=str(tmp_path / "serving-home"),
                redis_url=redis_url,
                mlflow_url=server.url,
                feast_registry_url=feast_db,
                prediction_log_url=log_db,
                artifact_root=f"s3://{BUCKET}/models",
                api_key=API_KEY,
                s3=s3.environment(),
                trusted_keys_file=str(signing_key_files().trusted_keys),
            )
            # Not in compose (defaults there): the model name the test registers, a fast alias poll.
            serving |= {"CHURNOPS_MODEL_NAME": MODEL, "CHURNOPS_SERVING_POLL_SECONDS": "1"}
            yield Topology(
                s3=s3,
                mlflow=server,
                gateway=gateway,
                registry_db=postgres_url,
                training_env=training,
                serving_env=serving,
                work=tmp_path,
            )
    except S3Unavailable as error:
        service_missing("SeaweedFS (weed)", WEED_HOW, error)
    finally:
        gateway.stop()


def _cli(env: dict[str, str], *args: str) -> str:
    """One ``churnops`` command with exactly ``env`` on top of a CHURNOPS_-free environment."""
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, f"churnops {' '.join(args)}: {result.output}"
    return result.stdout


def _admin(server: MlflowServer) -> httpx.Client:
    assert server.admin_username is not None and server.admin_password is not None
    return httpx.Client(base_url=server.url, auth=(server.admin_username, server.admin_password), timeout=60)


def _create_reader(server: MlflowServer, *, model: str) -> dict[str, str]:
    """A non-admin MLflow user with READ on ``model`` only (default permission: none)."""
    password = secrets.token_hex(16)
    with _admin(server) as admin:
        created = admin.post(
            "/api/2.0/mlflow/users/create", json={"username": SERVING_USER, "password": password}
        )
        assert created.status_code == 200, created.text
        granted = admin.post(
            "/api/3.0/mlflow/users/permissions/grant",
            json={
                "username": SERVING_USER,
                "resource_type": "registered_model",
                "resource_id": model,
                "permission": "READ",
            },
        )
        assert granted.status_code == 200, granted.text
    return {"MLFLOW_TRACKING_USERNAME": SERVING_USER, "MLFLOW_TRACKING_PASSWORD": password}


def _latest_ids(home: Path, *, n: int) -> list[str]:
    """``n`` customers present in the newest snapshot of every feature view's source."""
    from churnops.contracts.columns import VIEWS
    from churnops.contracts.sources import read_source

    present: set[str] | None = None
    for view in VIEWS:
        frame = read_source(sources_dir=home / "sources", name=view)
        newest = frame[frame[EVENT_TS] == frame[EVENT_TS].max()]
        ids = set(newest[JOIN_KEY].astype(str))
        present = ids if present is None else present & ids
    assert present, "no customer is in the newest snapshot of every view"
    return sorted(present)[:n]


def _check_dashboards(
    *, prometheus: Prometheus, service: ServiceProcess, topology: Topology, version: str, ids: list[str]
) -> None:
    """Traffic on serving, the monitoring jobs' gauges on the Pushgateway: every Grafana panel's
    PromQL then returns data from this Prometheus (the repo's scrape config and rules)."""
    from monitoring.prometheus import push_loop_metrics, push_monitoring_metrics

    env = Environment(customer_ids=ids, stale_ids=ids[:1], as_of=datetime.now(UTC), model_version=version)
    send_traffic(service=service, env=env, api_key=API_KEY)
    gateway = topology.training_env["CHURNOPS_PUSHGATEWAY_URL"]
    drifted = drift_document(version=version, share=0.5)
    push_monitoring_metrics(gateway=gateway, job="churnops-drift", drift_json=drifted, timeout_s=5)
    push_monitoring_metrics(
        gateway=gateway,
        job="churnops-performance",
        performance=performance_report(version=version),
        timeout_s=5,
    )
    push_loop_metrics(  # what `churnops loop run` pushes after a day
        gateway=gateway,
        model_name="churn",
        moment=env.as_of.timestamp(),
        complete=True,
        retrain_fired=False,
        promoted=False,
        production_version=version,
        timeout_s=5,
    )
    wait_for(prometheus, 'up{job="churnops-serving"} == 1')
    wait_for(prometheus, 'up{job="pushgateway"} == 1')
    wait_for(prometheus, f'count_over_time(churnops_score_count{{model_version="{version}"}}[1m]) >= 5')
    empty = [
        f"{where}: {expr}"
        for where, expr in dashboard_exprs()
        if not first_data(prometheus, expr.replace("$__rate_interval", RATE_INTERVAL))
    ]
    assert empty == [], "dashboard expressions without data:\n" + "\n".join(empty)


# The CLI runs in-process here (CliRunner): each `features` command's FeatureStore holds Feast's
# SQL-registry engines on PostgreSQL, which Feast never disposes, so their pooled psycopg
# connections are closed only by garbage collection (a CLI process simply exits; the narrow
# warning filter for it is in pyproject.toml).
@pytest.mark.timeout(600)  # ~200 s on a loaded 2-core machine; the suite's 300 s default is too tight
def test_train_promote_and_serve_through_an_authenticated_mlflow_server(topology: Topology) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        nonlocal started
        timings[name] = round(time.monotonic() - started, 1)
        started = time.monotonic()

    # The server refuses anonymous REST calls, whatever default_permission says.
    anonymous = httpx.get(f"{topology.mlflow.url}/api/2.0/mlflow/registered-models/search", timeout=30)
    assert anonymous.status_code == 401, anonymous.text

    # Provisioned before any model exists, as a deployment's init step would: READ on the name.
    reader = _create_reader(topology.mlflow, model=MODEL)

    env = topology.training_env
    months = 6
    _cli(env, "data", "generate", "--customers", "2000", "--months", str(months), "--seed", "11",
         "--start", _first_snapshot(months), "--json")  # fmt: skip
    _cli(env, "features", "apply")
    _cli(env, "features", "materialize")
    lap("data+features")
    trained = json.loads(_cli(env, "train", "--json"))
    assert trained["gates"]["passed"] is True, trained["gates"]
    version = str(trained["version"])
    lap("train")
    for stage in ("Staging", "Production"):
        _cli(env, "registry", "promote", version, "--stage", stage, "--reason", "topology test")
    lap("promote")

    # The model's files are really on S3, under the training artifact root.
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=topology.s3.endpoint,
        aws_access_key_id=topology.s3.access_key,
        aws_secret_access_key=topology.s3.secret_key,
        region_name="us-east-1",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="models/").get("Contents", [])]
    s3.close()
    assert any(k.endswith("/model.skops") for k in keys), keys

    serving_env = {**topology.serving_env, **reader}
    assert not any("REGISTRY_DATABASE" in k for k in serving_env)
    assert topology.registry_db not in serving_env.values()

    ids = _latest_ids(Path(env["CHURNOPS_HOME"]), n=3)
    traffic_ids = _latest_ids(Path(env["CHURNOPS_HOME"]), n=20)
    service = ServiceProcess(env=serving_env, log_path=topology.work / "service.log")
    prometheus: Prometheus | None = None
    service.start()
    try:
        service.wait_ready(timeout_s=240)
        lap("serving ready")
        response = httpx.post(
            f"{service.url}/predict",
            json={"customer_ids": [*ids, "NOPE-0000"]},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        prometheus = Prometheus(
            workdir=topology.work / "prometheus",
            config=scrape_config(serving=f"127.0.0.1:{service.port}", gateway=topology.gateway.url[7:]),
            rule_files=(ROOT / "deploy" / "prometheus" / "alerts.yml",),
        )
        prometheus.start()
        _check_dashboards(
            prometheus=prometheus, service=service, topology=topology, version=version, ids=traffic_ids
        )
        lap("prometheus + dashboards")
    finally:
        if prometheus is not None:
            prometheus.stop()
        service.stop()
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["model_name"] == MODEL and body["model_version"] == version
    statuses = [(p["customer_id"], p["status"]) for p in body["predictions"]]
    assert statuses == [*((i, "ok") for i in ids), ("NOPE-0000", "unknown_customer")], statuses
    assert all(0.0 < p["churn_probability"] < 1.0 for p in body["predictions"][:3])

    # READ is all serving has: the same credentials cannot change the registry.
    with httpx.Client(
        base_url=topology.mlflow.url,
        auth=(reader["MLFLOW_TRACKING_USERNAME"], reader["MLFLOW_TRACKING_PASSWORD"]),
        timeout=60,
    ) as client:
        readable = client.get("/api/2.0/mlflow/registered-models/get", params={"name": MODEL})
        assert readable.status_code == 200, readable.text
        refused = client.post(
            "/api/2.0/mlflow/registered-models/alias",
            json={"name": MODEL, "alias": "production", "version": version},
        )
        assert refused.status_code == 403, refused.text
    lap("score+checks")
    print(f"production topology timings (s): {timings}")
    # Collect those registry connections now, under this test's warning filter, not in a later test.
    gc.collect()
