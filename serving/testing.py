"""A small, real serving environment for tests, the benchmark and a local try-out.

``build_environment`` writes generated customers as Feast sources, applies the repo, materializes
the online store, fits a small sklearn Pipeline on the raw churn_v1 features and registers it in
MLflow (skops format, ``production`` alias, ``sha256`` and ``feast.feature_service`` version tags)
the way training and registry_ext do. Nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnops.schema import CREATED_TS, EVENT_TS, FEATURES, JOIN_KEY, LABEL, feature_names
from churnops.settings import Settings

CATEGORICAL = [c.name for c in FEATURES if c.kind == "category"]
NUMERIC = [c.name for c in FEATURES if c.kind != "category"]


@dataclass(frozen=True)
class Environment:
    """What was built: the ids that have fresh features, the stale ones, and the model version."""

    customer_ids: list[str]
    stale_ids: list[str]
    as_of: datetime
    model_version: str


def generate_rows(*, n: int, seed: int, as_of: datetime, prefix: str = "C") -> pd.DataFrame:
    """``n`` customers' snapshot rows at ``as_of`` with features inside their declared domains."""
    rng = np.random.default_rng(seed)
    frame: dict[str, Any] = {JOIN_KEY: [f"{prefix}{i:06d}-{seed:03d}" for i in range(n)]}
    for col in FEATURES:
        if col.kind == "category":
            frame[col.name] = rng.choice(list(col.categories), size=n)
        elif col.kind == "flag":
            frame[col.name] = rng.integers(0, 2, size=n)
        elif col.kind == "int":
            frame[col.name] = rng.integers(0, 73, size=n)
        else:
            frame[col.name] = np.round(rng.uniform(18.0, 120.0, size=n), 2)
    out = pd.DataFrame(frame)
    out["total_charges"] = np.round(out["monthly_charges"] * out["tenure"], 2)
    ts = pd.Timestamp(as_of).tz_convert("UTC")
    out[EVENT_TS] = ts
    out[CREATED_TS] = ts
    hazard = (
        (out["contract"] == "Month-to-month") * 1.2
        + (out["internet_service"] == "Fiber optic") * 0.6
        - out["tenure"] / 30.0
    )
    out[LABEL] = (rng.uniform(size=n) < 1 / (1 + np.exp(-hazard))).astype("int64")
    return out


def fit_pipeline(rows: pd.DataFrame, *, c: float = 1.0) -> Any:
    """One-hot + scale + logistic regression on the raw features (a DataFrame in, predict_proba)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("num", StandardScaler(), NUMERIC),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(C=c, max_iter=500))])
    model.fit(rows[feature_names()], rows[LABEL])
    return model


@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """MLflow's fluent API (and parts of registry_ext) read the global tracking URI: set it briefly."""
    import mlflow

    set_before = mlflow.is_tracking_uri_set()  # type: ignore[no-untyped-call]
    previous = mlflow.get_tracking_uri() if set_before else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous or "")


def _registry(settings: Settings) -> Any:
    from mlflow import MlflowClient

    from registry_ext import ModelRegistry, registry_engine

    return ModelRegistry(
        client=MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri),
        engine=registry_engine(settings.tracking_uri),
        model_name=settings.model_name,
    )


def register_model(*, settings: Settings, model: Any, example: pd.DataFrame, alias: bool = True) -> str:
    """Log ``model`` in skops format and register it with its sha256 and feature service.

    Through registry_ext when it is importable (register + promote), else straight in MLflow
    (version tags ``sha256`` and ``feast.feature_service``, ``production`` alias). Returns the version.
    """
    import mlflow
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from churnops.artifacts import sha256_of_path
    from serving.model_source import registry_ext_available

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    with _tracking(settings.tracking_uri):
        name = "churnops-serving-tests"
        experiment = client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(name, artifact_location=settings.artifact_location)
        )
        features = example[feature_names()]
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(experiment_id=experiment_id) as run:
            # Saved locally and logged as the run's ``model/`` directory (the layout both
            # registry_ext and plain MLflow resolve); the digest covers exactly these files.
            local = Path(tmp) / "model"
            mlflow.sklearn.save_model(
                model,
                str(local),
                serialization_format="skops",
                signature=infer_signature(features, model.predict_proba(features)),
                input_example=features.head(2),
            )
            sha = sha256_of_path(local)
            mlflow.log_artifacts(str(local), artifact_path="model")
            mlflow.set_tag("feast.feature_service", settings.feature_service)
        if registry_ext_available():
            record = _registry(settings).register(
                run_id=run.info.run_id,
                artifact_path="model",
                sha256=sha,
                feature_service=settings.feature_service,
                metrics={"test_roc_auc": 0.5},
                actor="serving-tests",
            )
            version = str(record.version)
        else:
            registered = mlflow.register_model(f"runs:/{run.info.run_id}/model", settings.model_name)
            version = str(registered.version)
            client.set_model_version_tag(settings.model_name, version, "sha256", sha)
            client.set_model_version_tag(
                settings.model_name, version, "feast.feature_service", settings.feature_service
            )
    if alias:
        promote(settings=settings, version=version)
    return version


def promote(*, settings: Settings, version: str) -> None:
    """Make ``version`` Production (through registry_ext when present, else the MLflow alias)."""
    from mlflow import MlflowClient

    from serving.model_source import registry_ext_available

    with _tracking(settings.tracking_uri):
        if registry_ext_available():
            from registry_ext import InvalidTransitionError

            registry = _registry(settings)
            try:
                registry.promote(
                    version=int(version), stage="Production", reason="serving test", actor="tests"
                )
            except InvalidTransitionError:  # a new version goes through Staging first
                registry.promote(version=int(version), stage="Staging", reason="serving test", actor="tests")
                registry.promote(
                    version=int(version), stage="Production", reason="serving test", actor="tests"
                )
            return
        client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
        client.set_registered_model_alias(settings.model_name, "production", version)


def build_environment(
    *, settings: Settings, n_customers: int = 200, seed: int = 7, as_of: datetime | None = None
) -> Environment:
    """Sources, Feast registry + online store (materialized), and a registered Production model.

    The last ten customers' account/services rows are 60 days older than the rest (past the
    45-day TTL) and are materialized from an earlier window, so the online store serves them
    as present while they are stale.
    """
    from churnops.features.materialize import materialize
    from churnops.features.store import apply, definitions, feature_store
    from churnops.sources import write_sources

    as_of = as_of or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    fresh = generate_rows(n=n_customers, seed=seed, as_of=as_of)
    old = generate_rows(n=10, seed=seed + 1, as_of=as_of - timedelta(days=60), prefix="S")
    write_sources(frame=old, sources_dir=settings.sources_dir, part="old", replace_all=True)
    write_sources(frame=fresh, sources_dir=settings.sources_dir, part="fresh")
    store = feature_store(settings)
    apply(store=store, defs=definitions(settings))
    # The stale customers: loaded by a materialization at their own time, then the fresh
    # window on top (which does not reach back 60 days, so it leaves them untouched).
    materialize(store=store, end=as_of - timedelta(days=60) + timedelta(minutes=1))
    materialize(store=store, end=as_of + timedelta(minutes=1))
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
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, loopback only
            [  # noqa: S607 - redis-server from PATH, as in tests/conftest.py
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        project = Path(__file__).resolve().parents[1]
        env = {**os.environ, **self.env}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, loopback only
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
            cwd=project,
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
    """The CHURNOPS_* variables that make a service process use ``settings``' home and stores."""
    env = {"CHURNOPS_HOME": str(settings.home), "CHURNOPS_MODEL_NAME": settings.model_name}
    if settings.redis_url:
        env["CHURNOPS_REDIS_URL"] = settings.redis_url
    if settings.mlflow_tracking_uri:
        env["CHURNOPS_MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    env.update(extra)
    return env
