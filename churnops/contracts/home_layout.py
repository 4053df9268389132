"""The ChurnOps home's layout: every path the embedded default keeps under ``CHURNOPS_HOME``.

One object built from the home path, one property per path: settings expose it
(``Settings.layout``), and every writer and reader of a home path takes it from here. Settings
may put a store elsewhere (``CHURNOPS_MLFLOW_TRACKING_URI``, ``CHURNOPS_ARTIFACT_ROOT``,
``CHURNOPS_SIGNING_KEY_FILE``, a prediction-log URL, ...); these are the defaults they replace.
``feature_repo/feature_store.yaml`` (YAML, read by Feast before any Python) spells
:attr:`HomeLayout.feast_registry` and :attr:`HomeLayout.online_store` of the repository's
``.churnops`` home once more; a test pins it to this layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HomeLayout:
    """The paths under one home (nothing is created: a property only names the path)."""

    home: Path

    @property
    def sources(self) -> Path:
        """The Feast sources: one directory of parquet part files per view and ``labels``."""
        return self.home / "sources"

    def source(self, name: str) -> Path:
        """The part files of one source (a view name or ``labels``)."""
        return self.sources / name

    @property
    def quarantine(self) -> Path:
        """Rows ingestion refused, with the reason."""
        return self.home / "quarantine"

    @property
    def feast(self) -> Path:
        """Feast's local state: the registry and the SQLite online store."""
        return self.home / "feast"

    @property
    def feast_registry(self) -> Path:
        return self.feast / "registry.db"

    @property
    def online_store(self) -> Path:
        """The SQLite online store (when no Redis URL is set)."""
        return self.feast / "online.db"

    @property
    def mlflow_db(self) -> Path:
        """MLflow's SQLite backend (and registry_ext's tables) when no tracking URI is set."""
        return self.home / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        """MLflow's artifact root when none is set."""
        return self.home / "artifacts"

    @property
    def keys(self) -> Path:
        """The signing key pair and the trusted public keys."""
        return self.home / "keys"

    @property
    def signing_key(self) -> Path:
        return self.keys / "signing_key.pem"

    @property
    def trusted_keys(self) -> Path:
        return self.keys / "trusted_keys"

    @property
    def predictions(self) -> Path:
        """The parquet prediction log (``date=YYYY-MM-DD`` partitions)."""
        return self.home / "predictions"

    @property
    def predictions_spool(self) -> Path:
        """Log rows the sink refused, kept to be replayed."""
        return self.home / "predictions-spool"

    @property
    def serving(self) -> Path:
        """The serving host's own state."""
        return self.home / "serving"

    @property
    def verified_model(self) -> Path:
        """The last model version this serving host verified (what a restart serves if the
        registry's is broken)."""
        return self.serving / "last_verified_model.json"

    def bentoml(self, port: int) -> Path:
        """BentoML's home of the service on ``port``."""
        return self.serving / f"bentoml-{port}"

    @property
    def evidently(self) -> Path:
        """Evidently's local workspace (drift report history)."""
        return self.home / "evidently"

    @property
    def reports(self) -> Path:
        """Drift reports' HTML."""
        return self.home / "reports"

    @property
    def scores(self) -> Path:
        """Batch scoring's output files."""
        return self.home / "scores"

    @property
    def simulations(self) -> Path:
        """Backtest simulations' output directories."""
        return self.home / "simulations"

    @property
    def training_set(self) -> Path:
        """``churnops features training-set``'s default output file."""
        return self.home / "training_set.parquet"
