"""Test helpers for registry_ext: real MLflow runs holding a small skops model, registered for real.

The model is training's own pipeline (``build_pipeline``) on three features, saved by training's
own code (``save_model_dir``), logged with ``evaluation/holdout.parquet``, then registered with
``ModelRegistry.register``. Saving an MLflow model is
the slow part (requirement inference, signature), so each distinct model is saved once per
process and its directory logged into as many runs as needed.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnops.contracts.artifacts import sha256_of_path
from churnops.contracts.columns import column
from tests.support.signing import signing_key_files

if TYPE_CHECKING:
    from registry_ext import ModelRegistry

FEATURES = ["tenure", "monthly_charges", "contract"]
COLUMNS = [column(name) for name in FEATURES]
_SAVED: dict[int, Path] = {}
_ROOT: list[Path] = []  # one temp dir per process, made on first use and removed at exit


def _models_root() -> Path:
    if not _ROOT:
        import atexit

        _ROOT.append(Path(tempfile.mkdtemp(prefix="registry-test-models-")))
        atexit.register(shutil.rmtree, _ROOT[0], True)
    return _ROOT[0]


@dataclass(frozen=True)
class LoggedCandidate:
    run_id: str
    experiment_id: str
    sha256: str


def churn_frame(*, seed: int, rows: int = 200) -> pd.DataFrame:
    """Raw feature rows with a label that depends on them (so ROC curves mean something)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, rows)  # an integer feature is int64 (the one dtype rule)
    charges = rng.uniform(20, 120, rows)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows)
    logit = -0.04 * tenure + 0.02 * charges + np.where(contract == "Month-to-month", 1.0, -0.8)
    churned = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return pd.DataFrame(
        {
            "customer_id": [f"{seed:04d}-{i:05d}" for i in range(rows)],
            "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(rows), "h"),
            "tenure": tenure,
            "monthly_charges": charges,
            "contract": contract,
            "churned": churned,
        }
    )


def fit_pipeline(*, seed: int, c: float = 1.0) -> Any:
    """Training's logistic-regression pipeline (``build_pipeline``) on three of the churn features."""
    from churnops.training.candidates import build_pipeline

    frame = churn_frame(seed=seed, rows=300)
    model = build_pipeline(family="logistic_regression", columns=COLUMNS).set_params(model__C=c)
    return model.fit(frame[FEATURES], frame["churned"])


def saved_model_dir(*, seed: int) -> Path:
    """A model directory saved by training's own code (skops, signature), once per seed."""
    if seed not in _SAVED:
        from churnops.training.mlflow_logging import save_model_dir

        model = fit_pipeline(seed=seed, c=0.05 + seed % 7)
        path = _models_root() / f"model-{seed}"
        save_model_dir(
            model=model, columns=COLUMNS, input_example=churn_frame(seed=seed, rows=5)[FEATURES], path=path
        )
        _SAVED[seed] = path
    return _SAVED[seed]


def log_candidate(
    client: Any, *, experiment_id: str, seed: int = 1, params: dict[str, str] | None = None
) -> LoggedCandidate:
    """A finished MLflow run holding ``model/`` and ``evaluation/holdout.parquet``."""
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    model_dir = saved_model_dir(seed=seed)
    client.log_artifacts(run_id, str(model_dir), "model")
    with tempfile.TemporaryDirectory() as tmp:
        holdout = Path(tmp) / "holdout.parquet"
        churn_frame(seed=1000 + seed, rows=150).to_parquet(holdout)
        client.log_artifact(run_id, str(holdout), "evaluation")
    for key, value in {
        "model_family": "logistic_regression",
        "seed": str(seed),
        "train_start": "2025-01-01",
        "train_end": "2025-10-01",
        **(params or {}),
    }.items():
        client.log_param(run_id, key, value)
    client.log_metric(run_id, "test_roc_auc", 0.8 + seed / 1000)
    client.set_tag(run_id, "feast.feature_refs", "account:tenure,account:monthly_charges,account:contract")
    client.set_terminated(run_id)
    return LoggedCandidate(run_id=run_id, experiment_id=experiment_id, sha256=sha256_of_path(model_dir))


def register_candidate(
    registry: Any,
    *,
    experiment_id: str,
    seed: int = 1,
    tags: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
) -> Any:
    """Log a candidate and register it (as training does for a candidate that passed its gates)."""
    logged = log_candidate(registry.client, experiment_id=experiment_id, seed=seed)
    return registry.register(
        run_id=logged.run_id,
        artifact_path="model",
        sha256=logged.sha256,
        feature_service="churn_v1",
        metrics=metrics or {"test_roc_auc": 0.8 + seed / 1000, "test_brier": 0.15},
        tags={"trigger": "manual", **(tags or {})},
        gate_results={"passed": True, "checks": [{"name": "roc_auc_floor", "passed": True}]},
        actor="tester",
        trigger="manual",
    )


def migrated_engine(database: str) -> Any:
    """A registry_ext engine on ``database`` with the schema at head (what the write commands do)."""
    from registry_ext import registry_engine
    from registry_ext.migrate import migrate_to_head

    engine = registry_engine(database)
    migrate_to_head(engine)
    return engine


def signed_registry(client: Any, engine: Any, *, model_name: str) -> Any:
    """A ModelRegistry that signs and verifies with the process's test keys (as wiring builds it)."""
    from registry_ext import ModelRegistry
    from registry_ext.signing import Signer, Verifier

    files = signing_key_files()
    return ModelRegistry(
        client=client,
        engine=engine,
        model_name=model_name,
        signer=Signer(files=files),
        verifier=Verifier(files=files),
    )


def make_registry(tracking_uri: str, artifact_location: str, *, model_name: str = "churn") -> tuple[Any, str]:
    """A ModelRegistry on a real MLflow store and the id of a fresh experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    experiment_id = client.create_experiment(
        f"exp-{model_name}", artifact_location=f"{artifact_location}/{model_name}"
    )
    engine = migrated_engine(tracking_uri)
    return signed_registry(client, engine, model_name=model_name), experiment_id


_STORES: dict[str, tuple[str, str]] = {}


def shared_sqlite_store(tmp_path_factory: Any) -> tuple[str, str]:
    """(tracking URI, artifact root) of one SQLite MLflow store per test session.

    Creating MLflow's schema takes seconds, so the SQLite test modules share one store and
    isolate themselves by registered model name instead.
    """
    if "sqlite" not in _STORES:
        home = tmp_path_factory.mktemp("registry-home")
        _STORES["sqlite"] = (f"sqlite:///{home / 'mlflow.db'}", str(home / "artifacts"))
    return _STORES["sqlite"]


def model_name_for(request: Any) -> str:
    """A registered model name unique to the requesting test."""
    import re

    return re.sub(r"[^A-Za-z0-9_]", "_", f"{request.module.__name__.rsplit('.', 1)[-1]}_{request.node.name}")[
        -90:
    ]


def fresh_postgres_database(admin_url: str) -> tuple[str, Any]:
    """Create a fresh database on the real server; returns its URL and a dropper.

    Like the ``postgres_url`` fixture, but usable from module-scoped fixtures (MLflow's schema
    takes long to create, so a module shares one database and isolates by model name).
    """
    import uuid

    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"churnops_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


def shared_postgres_store(admin_url: str, artifact_root: str) -> tuple[str, str]:
    """(database URL, artifact root) of one PostgreSQL MLflow store per test session.

    The database is dropped (WITH FORCE) when the test process exits.
    """
    import atexit

    if "postgres" not in _STORES:
        url, drop = fresh_postgres_database(admin_url)
        atexit.register(drop)
        _STORES["postgres"] = (url, artifact_root)
    return _STORES["postgres"]


def staged_and_live(reg: ModelRegistry, experiment_id: str, seeds: tuple[int, ...] = (1, 2)) -> None:
    """Each seed registered, then staged and put in Production in turn (the last one is live)."""
    for seed in seeds:
        register_candidate(reg, experiment_id=experiment_id, seed=seed)
        reg.promote(version=seed, stage="Staging", reason="stage", actor="a")
        reg.promote(version=seed, stage="Production", reason="ship", actor="a")


HOSTILE_PARAM = "<img src=x onerror=alert(1)>&'\""
"""A run parameter a report must escape."""


def three_versions_v2_live(registry: ModelRegistry, experiment_id: str) -> ModelRegistry:
    """Three versions; v2 is Production, the runs carry a hostile param and a very long one."""
    for seed in (1, 2, 3):
        logged = log_candidate(
            registry.client,
            experiment_id=experiment_id,
            seed=seed,
            params={"note": HOSTILE_PARAM, "features_long": ",".join(f"feature_{i}" for i in range(120))},
        )
        registry.register(
            run_id=logged.run_id,
            sha256=logged.sha256,
            feature_service="churn_v1",
            metrics={"test_roc_auc": 0.8, "test_rows": 1234.0, "positives_test": 56.0},
            gate_results={"passed": True, "results": []},
            actor="tester",
        )
    registry.promote(version=2, stage="Staging", reason="s", actor="t")
    registry.promote(version=2, stage="Production", reason="p", actor="t")
    return registry
