"""Where the Production model comes from: the ``production`` alias, read through MLflow's API.

Serving needs no access to the registry database (and no credentials for it): the version
that ``registry_ext`` put in Production is the one its ``production`` alias names, with the
artifact digest and FeatureService in the version's tags (registry_ext writes both at
registration). With an MLflow server this is two REST calls per poll, read-only; a serving
replica polling every 2 s writes nothing anywhere. The artifact's SHA-256 is checked against
the tag before anything is deserialized (``registry_ext.load_verified_model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from churnops.contracts.artifacts import FEATURE_SERVICE_TAG, RUN_FEATURE_SERVICE_TAG, SHA256_TAG
from churnops.contracts.stages import ALIAS_OF_STAGE, Stage

if TYPE_CHECKING:
    from mlflow import MlflowClient

PRODUCTION_ALIAS = ALIAS_OF_STAGE[Stage.PRODUCTION]


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


def _not_found(error: Exception) -> bool:
    code = str(getattr(error, "error_code", ""))
    return "RESOURCE_DOES_NOT_EXIST" in code or "not found" in str(error).lower()


class AliasModelSource:
    """Production = the registered model's ``production`` alias (read-only MLflow API calls)."""

    def __init__(self, *, client: MlflowClient, model_name: str, alias: str = PRODUCTION_ALIAS) -> None:
        self._client = client
        self._name = model_name
        self._alias = alias

    def production(self) -> ModelRef | None:
        from mlflow.exceptions import MlflowException

        try:
            version = self._client.get_model_version_by_alias(self._name, self._alias)
        except MlflowException as error:
            if _not_found(error):
                return None  # no such model yet, or no version holds the alias
            raise
        tags = dict(version.tags or {})
        feature_service = tags.get(FEATURE_SERVICE_TAG)
        if feature_service is None and version.run_id:
            run_tags: dict[str, str] = self._client.get_run(version.run_id).data.tags
            feature_service = run_tags.get(RUN_FEATURE_SERVICE_TAG)
        return ModelRef(
            name=self._name,
            version=str(version.version),
            sha256=tags.get(SHA256_TAG),
            feature_service=feature_service,
        )

    def load(self, ref: ModelRef) -> LoadedModel:
        from registry_ext import load_verified_model

        uri = self._client.get_model_version_download_uri(ref.name, ref.version)
        estimator = load_verified_model(
            artifact_uri=uri,
            expected=ref.sha256,
            label=f"model {ref.name!r} version {ref.version}",
            tracking_uri=self._client.tracking_uri,
        )
        return LoadedModel(ref=ref, estimator=estimator)
