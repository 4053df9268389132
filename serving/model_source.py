"""Where the Production model comes from: one small protocol, so the registry behind it is one place.

``MlflowAliasSource`` reads MLflow directly (the ``production`` alias, the ``sha256`` and
``feast.feature_service`` tags); ``RegistryExtSource`` asks ``registry_ext.ModelRegistry``
(docs/registry-api.md). ``model_source`` picks the latter when registry_ext is importable.
Both verify the artifact's SHA-256 before anything is deserialized.
"""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from churnops.artifacts import ArtifactIntegrityError, sha256_of_path

ALIAS = "production"
FEATURE_SERVICE_TAG = "feast.feature_service"


@dataclass(frozen=True)
class ModelRef:
    """The version the registry currently names Production."""

    name: str
    version: str
    sha256: str | None
    feature_service: str | None


@dataclass(frozen=True)
class LoadedModel:
    """A verified, deserialized Production model."""

    ref: ModelRef
    estimator: Any


class ModelSource(Protocol):
    def production(self) -> ModelRef | None:
        """The current Production version, or None when there is none."""

    def load(self, ref: ModelRef) -> LoadedModel:
        """Fetch and deserialize ``ref``; raise ArtifactIntegrityError on a SHA-256 mismatch."""


def run_feature_service(client: Any, run_id: str) -> str | None:
    """The FeatureService a training run recorded (Feast's native MLflow integration tag)."""
    tags: dict[str, str] = client.get_run(run_id).data.tags
    return tags.get(FEATURE_SERVICE_TAG)


def _load_verified(*, download_uri: str, expected_sha: str | None) -> Any:
    import mlflow.artifacts
    import mlflow.sklearn

    if not expected_sha:
        raise ArtifactIntegrityError("the model version has no recorded sha256; refusing to load it")
    with tempfile.TemporaryDirectory(prefix="churnops-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=download_uri, dst_path=tmp))
        actual = sha256_of_path(local)
        if actual != expected_sha:
            raise ArtifactIntegrityError(f"model artifact sha256 {actual} != recorded {expected_sha}")
        return mlflow.sklearn.load_model(str(local))


class MlflowAliasSource:
    """The registered model's ``production`` alias, straight from MLflow."""

    def __init__(self, *, tracking_uri: str, model_name: str) -> None:
        from mlflow import MlflowClient

        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._name = model_name

    def production(self) -> ModelRef | None:
        from mlflow.exceptions import MlflowException

        try:
            version = self._client.get_model_version_by_alias(self._name, ALIAS)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        tags = dict(version.tags or {})
        feature_service = tags.get(FEATURE_SERVICE_TAG) or tags.get("feature_service")
        if feature_service is None and version.run_id:
            feature_service = run_feature_service(self._client, version.run_id)
        return ModelRef(
            name=self._name,
            version=str(version.version),
            sha256=tags.get("sha256"),
            feature_service=feature_service,
        )

    def load(self, ref: ModelRef) -> LoadedModel:
        uri = self._client.get_model_version_download_uri(ref.name, ref.version)
        return LoadedModel(ref=ref, estimator=_load_verified(download_uri=uri, expected_sha=ref.sha256))


class RegistryExtSource:
    """Production as governed by registry_ext (reconciled with the alias; verifies SHA-256)."""

    def __init__(self, *, tracking_uri: str, model_name: str) -> None:
        from mlflow import MlflowClient

        from registry_ext import ModelRegistry, registry_engine

        self._registry = ModelRegistry(
            client=MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri),
            engine=registry_engine(tracking_uri),
            model_name=model_name,
        )
        self._name = model_name

    def production(self) -> ModelRef | None:
        record = self._registry.production()
        if record is None:
            return None
        return ModelRef(
            name=self._name,
            version=str(record.version),
            sha256=record.sha256,
            feature_service=record.feature_service
            or (run_feature_service(self._registry.client, record.run_id) if record.run_id else None),
        )

    def load(self, ref: ModelRef) -> LoadedModel:
        return LoadedModel(ref=ref, estimator=self._registry.load_model(int(ref.version)))


def registry_ext_available() -> bool:
    try:
        module = importlib.util.find_spec("registry_ext")
    except (ImportError, ValueError):
        return False
    if module is None:
        return False
    import registry_ext

    return hasattr(registry_ext, "ModelRegistry")


def model_source(*, tracking_uri: str, model_name: str) -> ModelSource:
    """registry_ext when it is there, MLflow's alias otherwise."""
    if registry_ext_available():
        return RegistryExtSource(tracking_uri=tracking_uri, model_name=model_name)
    return MlflowAliasSource(tracking_uri=tracking_uri, model_name=model_name)
