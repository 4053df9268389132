"""Serving's credentials, provisioned as the deploy files provision them, refused every write
but the prediction log's INSERT (docs/security.md "Least privilege").

PostgreSQL: two databases of this module's own (the prediction log's, which also holds MLflow's
and registry_ext's tables as in compose, and the Feast registry's) and a serving role created
by ``deploy/postgres/provision-roles.sh``, the script compose's ``postgres-init`` runs, on the
suite's real server. The tables are made by their real owners' code (MLflow's migrations,
registry_ext's, Feast's SQL registry), mostly after the role: the script's default privileges
must cover them, and a second run must converge, as a restart of compose does. This server
trusts loopback connections, so passwords are not checked here; privileges are.

S3: a real SeaweedFS server (``weed mini``) whose serving identity is the shipped MinIO policy
(``deploy/minio/serving-read-policy.json``, attached by compose's ``minio-init``) translated
into SeaweedFS actions by ``tests.support.least_privilege.seaweed_actions``: the same rule
expressed for SeaweedFS. The policy file itself is checked statically in
tests/unit/test_deploy_files.py. The MLflow READ user's refusal to move an alias is
tested against a real MLflow server in tests/integration/test_production_topology.py.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, POSTGRES_HOW, service_missing
from tests.support.least_privilege import (
    PSQL_HOW,
    PsqlUnavailable,
    ServingDatabases,
    provision,
    psql_binary,
    serving_databases,
    serving_read_identity,
)
from tests.support.s3_server import WEED_HOW, S3Endpoint, S3Unavailable, weed_s3

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "churnops"
MODEL = "least_privilege"
INSUFFICIENT_PRIVILEGE = "42501"


@dataclass(frozen=True)
class Stack:
    databases: ServingDatabases
    s3: S3Endpoint
    serving_s3: dict[str, str]
    artifact_uri: str
    model_sha256: str
    version: int
    project: str
    home: Path


def _s3_environment(s3: S3Endpoint, *, access_key: str, secret_key: str) -> dict[str, str]:
    return {**s3.environment(), "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}


def _use_s3_credentials(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    """Switch the process's S3 credentials (MLflow caches boto3 clients by endpoint, not key)."""
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client

    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    _cached_get_s3_client.cache_clear()
    boto3.DEFAULT_SESSION = None


def _settings(home: Path, project: str, **urls: Any) -> Any:
    from churnops.settings import Settings

    return Settings(home=home, project=project, _env_file=None, **urls)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import sqlalchemy as sa

    try:
        psql_binary()
    except PsqlUnavailable as error:
        service_missing("psql", PSQL_HOW, error)
    try:
        with sa.create_engine(POSTGRES_ADMIN_URL).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        service_missing("PostgreSQL", POSTGRES_HOW, error)

    laps: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        laps[name] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()

    identity, serving_key, serving_secret = serving_read_identity()
    work = tmp_path_factory.mktemp("least-privilege")
    with pytest.MonkeyPatch.context() as monkeypatch:
        try:
            s3_context = weed_s3(workdir=work, bucket=BUCKET, extra_identities=[identity])
            s3 = s3_context.__enter__()
        except S3Unavailable as error:
            service_missing("SeaweedFS (weed)", WEED_HOW, error)
        lap("weed")
        try:
            with serving_databases(admin_url=POSTGRES_ADMIN_URL) as databases:
                lap("databases + provisioning")
                # The owner's side, as training and `features apply` write it: MLflow's and
                # registry_ext's tables, a registered version with its artifacts on S3 (the
                # read-write key), the production alias, the Feast registry.
                from tests.support.registry import make_registry, register_candidate

                _use_s3_credentials(monkeypatch, s3.environment())
                registry, experiment_id = make_registry(
                    databases.owner_log_url, f"s3://{BUCKET}/models", model_name=MODEL
                )
                lap("mlflow + registry_ext schema")
                record = register_candidate(registry, experiment_id=experiment_id, seed=3)
                registry.client.set_registered_model_alias(MODEL, "production", str(record.version))
                registry.engine.dispose()
                lap("a registered version on S3")

                from feast import Entity, ValueType

                from churnops import wiring

                lap("import feast")
                project = "lp" + os.urandom(4).hex()
                home = work / "home"
                owner = _settings(home, project, feast_registry_url=databases.owner_feast_url)
                wiring.feature_store(owner, check=False).apply(
                    [Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)]
                )

                # A restart of compose runs postgres-init again: it must converge, not fail.
                log_db = sa.make_url(databases.owner_log_url).database
                feast_db = sa.make_url(databases.owner_feast_url).database
                assert log_db and feast_db
                provision(
                    owner_url=databases.owner_log_url,
                    role=databases.role,
                    password=databases.password,
                    log_db=log_db,
                    feast_db=feast_db,
                )
                lap("feast registry + provisioning again")
                print(f"least-privilege setup timings (s): {laps}")
                yield Stack(
                    databases=databases,
                    s3=s3,
                    serving_s3=_s3_environment(s3, access_key=serving_key, secret_key=serving_secret),
                    artifact_uri=record.artifact_uri,
                    model_sha256=record.sha256,
                    version=record.version,
                    project=project,
                    home=home,
                )
        finally:
            s3_context.__exit__(None, None, None)


def _refused(engine: Any, statement: str) -> bool:
    """True when PostgreSQL refuses ``statement`` for lack of privilege (nothing else counts)."""
    import sqlalchemy as sa

    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    except sa.exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
            return True
        raise
    return False


# --------------------------------------------------------------------------- PostgreSQL


def test_serving_appends_to_the_prediction_log_through_the_real_sink(stack: Stack, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from churnops import wiring
    from churnops.contracts.prediction_log import LogRecord
    from serving.prediction_log import PredictionLog, SqlSink

    settings = _settings(
        tmp_path / "home", stack.project, serving_prediction_log_url=stack.databases.serving_log_url
    )
    sink = wiring.prediction_log_sink(settings)
    assert isinstance(sink, SqlSink)
    written: list[int] = []
    log = PredictionLog(directory=tmp_path / "predictions", sink=sink, on_written=written.append)
    request_id = f"lp-{os.urandom(4).hex()}"
    ts = datetime(2026, 12, 1, 12, tzinfo=UTC)
    log.append(
        [
            LogRecord(
                request_id=request_id,
                ts=ts,
                endpoint="predict",
                customer_id="7590-VHVEG",
                model_name=MODEL,
                model_version=str(stack.version),
                feature_service="churn_v1",
                score=0.25,
                status="ok",
                features={"tenure": 3, "contract": "Month-to-month", "monthly_charges": 70.5},
                feature_ts=ts,
            )
        ]
    )
    assert log.flush() == 1 and written == [1], "the serving role could not INSERT a log row"
    assert log.spool.files() == []
    sink.dispose()

    owner = sa.create_engine(stack.databases.owner_log_url)
    try:
        with owner.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT customer_id, score, tenure FROM prediction_log WHERE request_id = :r"),
                {"r": request_id},
            ).all()
    finally:
        owner.dispose()
    assert [tuple(row) for row in rows] == [("7590-VHVEG", 0.25, 3)]


def test_the_provisioned_log_table_is_the_contract_table(stack: Stack) -> None:
    """serving-role.sql creates the table serving may not create: it must be the one the
    contract's own DDL makes (created here beside it, in a schema of its own, and compared)."""
    import sqlalchemy as sa

    from churnops.contracts.prediction_log import prediction_log_table

    owner = sa.create_engine(stack.databases.owner_log_url)

    def shape(
        schema: str | None,
    ) -> tuple[list[tuple[str, str, bool, bool]], set[tuple[str, tuple[str, ...]]]]:
        inspector = sa.inspect(owner)
        columns = [
            (c["name"], str(c["type"].compile(owner.dialect)), c["nullable"], c.get("default") is not None)
            for c in inspector.get_columns("prediction_log", schema=schema)
        ]
        indexes = {
            (str(i["name"]).replace(f"ix_{schema}_", "ix_"), tuple(str(c) for c in i["column_names"]))
            for i in inspector.get_indexes("prediction_log", schema=schema)
        }
        return columns, indexes

    try:
        with owner.begin() as conn:
            conn.execute(sa.text("CREATE SCHEMA contract_check"))
        prediction_log_table(sa.MetaData(schema="contract_check")).create(owner)
        assert shape(None) == shape("contract_check")
        primary = sa.inspect(owner).get_pk_constraint("prediction_log")["constrained_columns"]
        assert primary == ["id"]
    finally:
        with owner.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS contract_check CASCADE"))
        owner.dispose()


WRITES = [
    # MLflow's registry: the alias serving follows, versions, runs.
    "UPDATE registered_model_aliases SET version = version",
    "INSERT INTO registered_model_aliases DEFAULT VALUES",
    "DELETE FROM registered_model_aliases",
    "UPDATE model_versions SET description = 'x'",
    "UPDATE runs SET status = 'FAILED'",
    # registry_ext's own tables.
    "UPDATE models SET stage = 'production'",
    "INSERT INTO models DEFAULT VALUES",
    "DELETE FROM models",
    "UPDATE model_transitions SET reason = 'x'",
    "INSERT INTO model_transitions DEFAULT VALUES",
    "DELETE FROM model_transitions",
    "INSERT INTO model_experiments DEFAULT VALUES",
    # The prediction log: append-only for serving; nothing but the generated id is readable.
    "UPDATE prediction_log SET score = 0",
    "DELETE FROM prediction_log",
    "TRUNCATE prediction_log",
    "SELECT customer_id, score FROM prediction_log",
    "SELECT * FROM prediction_log",
    # Nothing new either.
    "CREATE TABLE serving_owned (id int)",
    "CREATE SCHEMA serving_owned",
]


@pytest.mark.parametrize("statement", WRITES)
def test_serving_role_is_refused_registry_and_log_writes(stack: Stack, statement: str) -> None:
    import sqlalchemy as sa

    serving = sa.create_engine(stack.databases.serving_log_url)
    try:
        assert _refused(serving, statement), f"the serving role may: {statement}"
    finally:
        serving.dispose()


def test_serving_role_may_not_insert_or_update_any_other_table(stack: Stack) -> None:
    """Every table in the log database but the log itself, whoever created it (MLflow's ~30
    tables, registry_ext's, alembic's): no INSERT, UPDATE or SELECT."""
    import sqlalchemy as sa

    owner = sa.create_engine(stack.databases.owner_log_url)
    serving = sa.create_engine(stack.databases.serving_log_url)
    try:
        tables = sa.inspect(owner).get_table_names()
        assert {"registered_model_aliases", "models", "model_transitions", "prediction_log"} <= set(tables)
        allowed = []
        for table in sorted(set(tables) - {"prediction_log"}):
            for statement in (
                f'INSERT INTO "{table}" DEFAULT VALUES',
                f'UPDATE "{table}" SET "{_first_column(owner, table)}" = NULL',
                f'SELECT 1 FROM "{table}" LIMIT 1',
            ):
                if not _refused(serving, statement):
                    allowed.append(statement)
        assert allowed == []
    finally:
        owner.dispose()
        serving.dispose()


def _first_column(engine: Any, table: str) -> str:
    import sqlalchemy as sa

    return str(sa.inspect(engine).get_columns(table)[0]["name"])


def test_serving_role_reads_the_feast_registry_and_cannot_change_it(stack: Stack) -> None:
    """Through the wiring serving uses (a FeatureStore over the SQL registry), as the serving role."""
    import sqlalchemy as sa
    from feast import Entity, ValueType

    from churnops import wiring

    settings = _settings(stack.home, stack.project, feast_registry_url=stack.databases.serving_feast_url)
    store = wiring.feature_store(settings, check=False)
    assert [entity.name for entity in store.list_entities()] == ["customer"]
    with pytest.raises(sa.exc.ProgrammingError) as refused:
        store.apply([Entity(name="intruder", join_keys=["intruder_id"], value_type=ValueType.STRING)])
    assert getattr(refused.value.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE

    owner = sa.create_engine(stack.databases.owner_feast_url)
    serving = sa.create_engine(stack.databases.serving_feast_url)
    try:
        tables = sa.inspect(owner).get_table_names()
        assert {"entities", "feast_metadata", "projects"} <= set(tables)
        for table in tables:
            assert not _refused(serving, f'SELECT 1 FROM "{table}" LIMIT 1'), table
            assert _refused(serving, f'INSERT INTO "{table}" DEFAULT VALUES'), table
            assert _refused(serving, f'DELETE FROM "{table}"'), table
    finally:
        owner.dispose()
        serving.dispose()


def test_provisioning_refuses_placeholders_and_a_shared_feast_database() -> None:
    try:
        psql_binary()
    except PsqlUnavailable as error:
        service_missing("psql", PSQL_HOW, error)
    for password, log_db, feast_db, expected in (
        ("CHANGE_ME", "a", "b", "placeholder"),
        ("<serving password>", "a", "b", "placeholder"),
        ("", "a", "b", "SERVING_DB_PASSWORD is not set"),
        ("0123456789abcdef", "same", "same", "must be its own database"),
    ):
        with pytest.raises(RuntimeError) as refused:
            provision(
                owner_url=POSTGRES_ADMIN_URL,
                role="nobody_lp",
                password=password,
                log_db=log_db,
                feast_db=feast_db,
            )
        assert "exited 2" in str(refused.value) and expected in str(refused.value)


# --------------------------------------------------------------------------- S3


def _s3_client(environment: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=environment["MLFLOW_S3_ENDPOINT_URL"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=environment["AWS_DEFAULT_REGION"],
    )


def test_serving_key_downloads_the_model_through_mlflow(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from churnops.contracts.artifacts import sha256_of_path

    _use_s3_credentials(monkeypatch, stack.serving_s3)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=stack.artifact_uri, dst_path=str(tmp_path)))
    assert (local / "model.skops").stat().st_size > 0
    assert sha256_of_path(local) == stack.model_sha256


def test_serving_key_cannot_write_or_delete_artifacts(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    key = stack.artifact_uri.removeprefix(f"s3://{BUCKET}/") + "/model.skops"
    serving = _s3_client(stack.serving_s3)
    writer = _s3_client(stack.s3.environment())
    original = writer.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert serving.get_object(Bucket=BUCKET, Key=key)["Body"].read() == original
    assert key in [o["Key"] for o in serving.list_objects_v2(Bucket=BUCKET, Prefix=key)["Contents"]]

    def denied(call: Any, **kwargs: Any) -> str:
        with pytest.raises(ClientError) as caught:
            call(**kwargs)
        return str(caught.value.response["Error"]["Code"])

    assert denied(serving.put_object, Bucket=BUCKET, Key=key, Body=b"hostile") == "AccessDenied"
    assert (
        denied(serving.put_object, Bucket=BUCKET, Key="models/new/model.skops", Body=b"x") == "AccessDenied"
    )
    assert denied(serving.delete_object, Bucket=BUCKET, Key=key) == "AccessDenied"
    assert denied(
        serving.copy_object, Bucket=BUCKET, Key=key + ".copy", CopySource={"Bucket": BUCKET, "Key": key}
    ) == ("AccessDenied")
    assert denied(serving.create_bucket, Bucket="churnops-other") == "AccessDenied"

    # MLflow's own artifact writer, as serving's process would call it.
    _use_s3_credentials(monkeypatch, stack.serving_s3)
    hostile = tmp_path / "model.skops"
    hostile.write_bytes(b"hostile")
    with pytest.raises(Exception, match="AccessDenied"):
        S3ArtifactRepository(stack.artifact_uri).log_artifact(str(hostile))  # type: ignore[no-untyped-call]

    assert writer.get_object(Bucket=BUCKET, Key=key)["Body"].read() == original
    assert hashlib.sha256(original).hexdigest() != hashlib.sha256(b"hostile").hexdigest()
    serving.close()
    writer.close()
