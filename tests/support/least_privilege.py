"""Serving's least-privileged credentials, provisioned the way the deploy files do it.

PostgreSQL: ``deploy/postgres/provision-roles.sh`` (which runs ``serving-role.sql`` with psql),
the script compose's ``postgres-init`` runs, here against the suite's server with databases
and a role of the test's own (roles are cluster-wide: the name is random and the role is
dropped afterwards). S3: the MinIO policy compose attaches to serving's key
(``deploy/minio/serving-read-policy.json``), translated action by action into a SeaweedFS
identity (``s3.json``); an action without a translation is an error, so a policy that grows a
write shows up as one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.postgres import fresh_database

ROOT = Path(__file__).resolve().parents[2]
PROVISION_SCRIPT = ROOT / "deploy" / "postgres" / "provision-roles.sh"
SERVING_READ_POLICY = ROOT / "deploy" / "minio" / "serving-read-policy.json"
PSQL_HOW = "install the PostgreSQL client (apt-get install -y postgresql-client; psql 15+ for \\getenv)"

# S3 policy action -> SeaweedFS identity action (per bucket: "Read:<bucket>").
SEAWEED_ACTIONS = {
    "s3:GetObject": "Read",
    "s3:GetBucketLocation": "Read",
    "s3:ListBucket": "List",
    "s3:PutObject": "Write",
    "s3:DeleteObject": "Write",
    "s3:AbortMultipartUpload": "Write",
    "s3:GetObjectTagging": "Tagging",
    "s3:PutObjectTagging": "Tagging",
}


class PsqlUnavailable(RuntimeError):
    """No ``psql`` on PATH (the caller skips, or fails under CI)."""


def psql_binary() -> str:
    path = shutil.which("psql")
    if path is None:
        raise PsqlUnavailable("no psql on PATH")
    return path


def seaweed_actions(policy: dict[str, Any]) -> list[str]:
    """The SeaweedFS actions granting what ``policy`` (AWS/MinIO IAM JSON) allows, per bucket.

    Refuses what it cannot express exactly: a Deny, a wildcard action or resource, a condition,
    an action it has no translation for.
    """
    actions: set[str] = set()
    for statement in policy["Statement"]:
        if statement.get("Effect") != "Allow" or "Condition" in statement:
            raise ValueError(f"cannot translate statement {statement!r}")
        names = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        buckets = set()
        for resource in resources:
            if not resource.startswith("arn:aws:s3:::"):
                raise ValueError(f"not an S3 resource: {resource!r}")
            bucket = resource.removeprefix("arn:aws:s3:::").removesuffix("/*")
            if not bucket or "*" in bucket or "/" in bucket:
                raise ValueError(f"cannot translate resource {resource!r} (bucket-wide only)")
            buckets.add(bucket)
        for name in names:
            if name not in SEAWEED_ACTIONS:
                raise ValueError(f"no SeaweedFS translation for {name!r}")
            actions.update(f"{SEAWEED_ACTIONS[name]}:{bucket}" for bucket in buckets)
    return sorted(actions)


def serving_read_identity(*, name: str = "serving") -> tuple[dict[str, object], str, str]:
    """A SeaweedFS identity with the shipped serving policy's rights, and its key pair."""
    policy = json.loads(SERVING_READ_POLICY.read_text(encoding="utf-8"))
    access_key, secret_key = f"AK{secrets.token_hex(8)}", secrets.token_hex(16)
    identity: dict[str, object] = {
        "name": name,
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": seaweed_actions(policy),
    }
    return identity, access_key, secret_key


@dataclass(frozen=True)
class ServingDatabases:
    """The owner's and serving's URLs of a prediction-log database and a Feast registry database."""

    role: str
    password: str
    owner_log_url: str
    owner_feast_url: str
    serving_log_url: str
    serving_feast_url: str


def _with_user(url: str, *, user: str, password: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


def provision(*, owner_url: str, role: str, password: str, log_db: str, feast_db: str) -> str:
    """Run the shipped provisioning script as the owner of ``owner_url``; returns its output.

    Raises ``RuntimeError`` with psql's output when the script fails.
    """
    import sqlalchemy as sa

    url = sa.make_url(owner_url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PG")},
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "SERVING_DB_USER": role,
        "SERVING_DB_PASSWORD": password,
        "PREDICTION_LOG_DB": log_db,
        "FEAST_REGISTRY_DB": feast_db,
    }
    if url.password:
        env["PGPASSWORD"] = url.password
    psql_binary()
    result = subprocess.run(
        ["/bin/sh", str(PROVISION_SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"provision-roles.sh exited {result.returncode}: {result.stdout}{result.stderr}")
    return result.stdout + result.stderr


@contextmanager
def serving_databases(*, admin_url: str) -> Iterator[ServingDatabases]:
    """Two fresh databases and a serving role provisioned on them by the shipped script.

    At exit the databases are dropped (which takes the role's grants in them), then the role.
    """
    import sqlalchemy as sa

    role = f"churnops_serving_{secrets.token_hex(6)}"
    password = secrets.token_hex(16)
    with ExitStack() as stack:

        def drop_role() -> None:
            admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
            finally:
                admin.dispose()

        stack.callback(drop_role)  # runs last: after both databases are gone
        log_url = stack.enter_context(fresh_database(admin_url=admin_url, prefix="churnops_lp_log"))
        feast_url = stack.enter_context(fresh_database(admin_url=admin_url, prefix="churnops_lp_feast"))
        log_db, feast_db = sa.make_url(log_url).database, sa.make_url(feast_url).database
        assert log_db and feast_db
        provision(owner_url=log_url, role=role, password=password, log_db=log_db, feast_db=feast_db)
        yield ServingDatabases(
            role=role,
            password=password,
            owner_log_url=log_url,
            owner_feast_url=feast_url,
            serving_log_url=_with_user(log_url, user=role, password=password),
            serving_feast_url=_with_user(feast_url, user=role, password=password),
        )
