"""A small, real serving environment for tests, the benchmark and a local try-out.

``build_environment`` writes generated customers (``churnops.data.generate``, re-stamped to a
recent time) as Feast sources, applies the repo, materializes the online store, fits the model
training uses (``churnops.training.candidates.build_pipeline``), logs it the way training does
(``churnops.training.mlflow_logging.log_model``) and registers and promotes it through
registry_ext, all through ``churnops.wiring``. Nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from churnops.contracts.columns import CREATED_TS, EVENT_TS, FEATURES, JOIN_KEY, LABEL, feature_names
from churnops.settings import Settings

EXPERIMENT = "churnops-serving-tests"


@dataclass(frozen=True)
class Environment:
    """What was built: the ids that have fresh features, the stale ones, and the model version."""

    customer_ids: list[str]
    stale_ids: list[str]
    as_of: datetime
    model_version: str


def generate_rows(*, n: int, seed: int, as_of: datetime) -> pd.DataFrame:
    """``n`` generated customers' snapshot rows (the project's generator), stamped at ``as_of``."""
    from churnops.data.generate import generate_churn_data

    frame = generate_churn_data(customers=n, months=1, seed=seed).frame.copy()
    ts = pd.Timestamp(as_of).tz_convert("UTC")
    frame[EVENT_TS] = ts
    frame[CREATED_TS] = ts
    return frame.reset_index(drop=True)


def fit_pipeline(rows: pd.DataFrame, *, c: float = 1.0) -> Any:
    """Training's logistic-regression pipeline (``build_pipeline``), fitted on ``rows``."""
    from churnops.training.candidates import build_pipeline

    model = build_pipeline(family="logistic_regression", columns=FEATURES).set_params(model__C=c)
    model.fit(rows[feature_names()], rows[LABEL])
    return model


def register_model(*, settings: Settings, model: Any, example: pd.DataFrame, alias: bool = True) -> str:
    """Log ``model`` as training does and register it through registry_ext; returns the version."""
    from churnops.training.mlflow_logging import log_model
    from churnops.wiring import mlflow_client, open_registry

    client = mlflow_client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(EXPERIMENT, artifact_location=settings.artifact_location)
    )
    run_id = client.create_run(experiment_id).info.run_id
    logged = log_model(
        client=client,
        run_id=run_id,
        model=model,
        columns=FEATURES,
        input_example=example[feature_names()].head(2),
    )
    client.set_tag(run_id, "feast.feature_service", settings.feature_service)
    client.set_terminated(run_id)
    with open_registry(settings, write=True) as registry:
        record = registry.register(
            run_id=run_id,
            artifact_path=logged.artifact_path,
            sha256=logged.sha256,
            feature_service=settings.feature_service,
            metrics={"test_roc_auc": 0.5},
            actor="serving-tests",
        )
    if alias:
        promote(settings=settings, version=str(record.version))
    return str(record.version)


def promote(*, settings: Settings, version: str) -> None:
    """Make ``version`` Production through registry_ext (via Staging)."""
    from churnops.wiring import open_registry

    with open_registry(settings, write=True) as registry:
        registry.promote(version=int(version), stage="Staging", reason="serving test", actor="tests")
        registry.promote(version=int(version), stage="Production", reason="serving test", actor="tests")


MATERIALIZED_AGO = timedelta(days=10)  # the environment's last materialization ran this long ago
STALE_BEFORE = timedelta(days=40)  # the stale customers' rows are this much older still


def load_online_store(*, store: Any, as_of: datetime) -> None:
    """Materialize as ``build_environment`` does (also to reload an emptied online store): one
    materialization at ``as_of``. It keeps the stale customers (40 days old then, inside the 45-day
    TTL, so the online store equals the offline answer at ``as_of``); served ``MATERIALIZED_AGO``
    later, they are 50 days old: ``stale_features``."""
    from churnops.features.materialize import materialize

    materialize(store=store, end=as_of + timedelta(minutes=1))


def build_environment(
    *, settings: Settings, n_customers: int = 200, seed: int = 7, as_of: datetime | None = None
) -> Environment:
    """Sources, Feast registry + online store (materialized), and a registered Production model.

    The store was last materialized at ``as_of`` (10 days ago by default); the last ten
    customers' account/services rows were 40 days old then, so served today they are past the
    45-day TTL (``stale_features``) while the rest are fresh (the materializer prunes what is
    outside the TTL at its ``end``, so staleness comes from time passing since, as in production).
    """
    from churnops.contracts.sources import write_sources
    from churnops.features.store import apply
    from churnops.wiring import feast_definitions, feature_store

    as_of = as_of or datetime.now(UTC).replace(microsecond=0) - MATERIALIZED_AGO
    fresh = generate_rows(n=n_customers, seed=seed, as_of=as_of)
    old = generate_rows(n=10, seed=seed + 1000, as_of=as_of - STALE_BEFORE)
    old = old[~old[JOIN_KEY].isin(fresh[JOIN_KEY])]
    write_sources(frame=old, sources_dir=settings.sources_dir, part="old", replace_all=True)
    write_sources(frame=fresh, sources_dir=settings.sources_dir, part="fresh")
    store = feature_store(settings)
    apply(store=store, defs=feast_definitions(settings))
    load_online_store(store=store, as_of=as_of)
    model = fit_pipeline(fresh)
    version = register_model(settings=settings, model=model, example=fresh)
    return Environment(
        customer_ids=list(fresh[JOIN_KEY]),
        stale_ids=list(old[JOIN_KEY]),
        as_of=as_of,
        model_version=version,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A private redis-server on loopback (no persistence) that a test may stop and start."""

    def __init__(self, *, port: int | None = None, workdir: Path) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout_s: float = 10.0) -> None:
        import redis

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class ServiceProcess:
    """``bentoml serve serving.service:ChurnService`` as a real subprocess on a loopback port."""

    def __init__(self, *, env: dict[str, str], port: int | None = None, log_path: Path) -> None:
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        # The environment as it is now: a restart inside a later test must start the same service,
        # not one that picked up that test's variables (e.g. its signing keys).
        self._base_env = dict(os.environ)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # Its own BentoML home: BentoML wipes <home>/prometheus_multiproc_dir at start.
        home = self.log_path.parent / f"bentoml-{self.port}"
        env = {**self._base_env, "BENTOML_HOME": str(home), **self.env}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                "serving.service:ChurnService",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=self.log_path.parent,  # the installed package is imported, not a checkout path
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, *, timeout_s: float = 180.0) -> float:
        """Seconds until /readyz answered 200."""
        import httpx

        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the service exited; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the service was not ready within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            self.process = None
            self._log.close()


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The CHURNOPS_* variables that make a service process resolve exactly ``settings``."""
    from churnops.commands.serve import settings_environment

    return {**settings_environment(settings), **extra}


@dataclass
class PrivateService:
    """A served environment on its own redis-server: what :func:`private_service` built."""

    settings: Settings
    redis: RedisServer
    env: Environment
    second_version: str  # registered, not promoted: for swaps, rollbacks or tampering
    service: ServiceProcess


@contextlib.contextmanager
def private_service(
    *, work: Path, n_customers: int, seed: int, c: float, **service_vars: str
) -> Iterator[PrivateService]:
    """A private redis-server, :func:`build_environment` on it, a second registered model
    (logistic regression with ``C=c`` on rows generated with ``seed``), and a started, ready
    service with ``service_vars`` on top of the settings; everything stopped on exit."""
    import shutil

    from tests.conftest import REDIS_HOW, service_missing

    if shutil.which("redis-server") is None:
        service_missing("redis-server", REDIS_HOW, FileNotFoundError("redis-server"))
    redis = RedisServer(workdir=work / "redis")
    redis.start()
    settings = Settings(home=work / "home", redis_url=redis.url, _env_file=None)
    service: ServiceProcess | None = None
    try:
        env = build_environment(settings=settings, n_customers=n_customers)
        rows = generate_rows(n=n_customers, seed=seed, as_of=env.as_of)
        second = register_model(settings=settings, model=fit_pipeline(rows, c=c), example=rows, alias=False)
        service = ServiceProcess(env=service_env(settings, **service_vars), log_path=work / "service.log")
        service.start()
        service.wait_ready()
        yield PrivateService(settings, redis, env, second, service)
    finally:
        if service is not None:
            service.stop()
        redis.stop()
