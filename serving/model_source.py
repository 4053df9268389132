"""Where the Production model comes from: the ``production`` alias, read through MLflow's API.

Serving needs no access to the registry database (and no credentials for it): the version
that ``registry_ext`` put in Production is the one its ``production`` alias names, with the
artifact digest and FeatureService in the version's tags (registry_ext writes both at
registration). With an MLflow server this is two REST calls per poll, read-only; a serving
replica polling every 2 s writes nothing anywhere.

Loading (``registry_ext.load_signed_model``) trusts none of the tags by themselves: the
version's Ed25519 signature over (name, version, manifest digest, feature service) must verify
with a trusted public key *before* anything is downloaded, the files must be the signed
manifest's, and the skops file may need only the code's ``TRUSTED_TYPES``. A version created or
re-tagged outside registry_ext is refused whatever its tags and aliases say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from churnops.contracts.artifacts import VersionSignature
from churnops.contracts.mlflow_keys import FEATURE_SERVICE_TAG, RUN_FEATURE_SERVICE_TAG, SHA256_TAG
from churnops.contracts.stages import ALIAS_OF_STAGE, Stage

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from registry_ext import Verifier

PRODUCTION_ALIAS = ALIAS_OF_STAGE[Stage.PRODUCTION]


@dataclass(frozen=True)
class ModelRef:
    """The version the registry currently names Production."""

    name: str
    version: str
    sha256: str | None
    feature_service: str | None
    signature: VersionSignature | None = None
    """Manifest, signature and key id from the version's tags (None: an unsigned version)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRef:
        """The inverse of ``dataclasses.asdict`` (the serving host's last-verified record)."""
        signed = data.get("signature")
        return cls(
            name=data["name"],
            version=data["version"],
            sha256=data["sha256"],
            feature_service=data["feature_service"],
            signature=None if signed is None else VersionSignature(**signed),
        )


@dataclass(frozen=True)
class LoadedModel:
    """A verified, deserialized Production model."""

    ref: ModelRef
    estimator: Any


class ModelSource(Protocol):
    def production(self) -> ModelRef | None:
        """The current Production version, or None when there is none."""

    def load(self, ref: ModelRef) -> LoadedModel:
        """Verify, fetch and deserialize ``ref``; raise ArtifactIntegrityError when it cannot be
        trusted (unsigned, wrongly signed, files changed, untrusted types)."""


def _not_found(error: Exception) -> bool:
    code = str(getattr(error, "error_code", ""))
    return "RESOURCE_DOES_NOT_EXIST" in code or "not found" in str(error).lower()


class AliasModelSource:
    """Production = the registered model's ``production`` alias (read-only MLflow API calls)."""

    def __init__(
        self, *, client: MlflowClient, model_name: str, verifier: Verifier, alias: str = PRODUCTION_ALIAS
    ) -> None:
        self._client = client
        self._name = model_name
        self._alias = alias
        self._verifier = verifier

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
            signature=VersionSignature.from_tags(tags),
        )

    def load(self, ref: ModelRef) -> LoadedModel:
        from registry_ext import SignedVersion, load_signed_model

        version = SignedVersion(
            name=ref.name, version=ref.version, feature_service=ref.feature_service, signature=ref.signature
        )
        # The signature is checked before anything is downloaded (and the URI is only where to look).
        uri = self._client.get_model_version_download_uri(ref.name, ref.version)
        estimator = load_signed_model(
            artifact_uri=uri, version=version, verifier=self._verifier, tracking_uri=self._client.tracking_uri
        )
        return LoadedModel(ref=ref, estimator=estimator)
