"""Model artifacts: where a run's model lives, download, signature and manifest checks, safe loading.

Loading a registered version (:func:`load_signed_model`) takes three checks, in this order:
the Ed25519 signature over (name, version, manifest digest, feature service) with a trusted
public key, before anything is downloaded; the downloaded files against the signed manifest
(MLflow's own ``registered_model_meta`` aside); the skops file's types against the code's
``TRUSTED_TYPES``, before anything is constructed.

Storage is whatever MLflow's artifact repositories support: a local directory on the embedded
default, ``s3://`` (MinIO, SeaweedFS, AWS) in production. S3 credentials and endpoint come only
from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``MLFLOW_S3_ENDPOINT_URL``),
read by boto3 through MLflow; nothing here accepts or stores a secret.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from churnops.contracts.artifacts import (
    REREGISTER_HINT,
    TREE_ENCODING,
    TRUSTED_TYPES,
    ArtifactIntegrityError,
    SignatureError,
    UnsignedVersionError,
    UntrustedTypeError,
    VersionSignature,
    legacy_sha256_of_path,
    manifest_digest,
    manifest_problems,
    parse_manifest,
    sha256_of_path,
    signed_payload,
)
from registry_ext.errors import InvalidInputError, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from registry_ext.signing import Verifier

MLMODEL = "MLmodel"


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """Where a logged model is: the MLflow ``source`` for the version and its storage URI."""

    source: str
    artifact_uri: str
    model_id: str | None


def resolve_model_location(*, client: MlflowClient, run: Run, artifact_path: str) -> ModelLocation:
    """Find the model ``artifact_path`` of ``run``.

    Two layouts exist in MLflow 3: a model directory among the run's artifacts (e.g. logged
    with ``mlflow.log_artifacts``), or a LoggedModel (``mlflow.sklearn.log_model(name=...)``)
    whose files live under the experiment's ``models/<model_id>/artifacts``.
    """
    path = artifact_path.strip("/")
    if not path:
        raise InvalidInputError("artifact_path must not be empty")
    run_id = run.info.run_id
    logged = [
        model
        for model in client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"name = '{path}'"
        )
        if model.source_run_id == run_id
    ]
    if len(logged) > 1:
        raise InvalidInputError(
            f"run {run_id} logged {len(logged)} models named {path!r}; log one model per name"
        )
    if logged:
        model = logged[0]
        return ModelLocation(
            source=f"models:/{model.model_id}", artifact_uri=model.artifact_location, model_id=model.model_id
        )
    # MLflow 3 lists a run's LoggedModel files under its artifacts too, so only now (no LoggedModel
    # of that name) does a listed MLmodel mean a directory among the run's own artifacts.
    listed = {entry.path for entry in client.list_artifacts(run_id, path)}
    if f"{path}/{MLMODEL}" in listed:
        uri = f"{run.info.artifact_uri.rstrip('/')}/{path}"
        return ModelLocation(source=uri, artifact_uri=uri, model_id=None)
    raise InvalidInputError(f"run {run_id} has no model at artifact path {path!r}")


def _local_path(artifact_uri: str) -> Path | None:
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "":
        return Path(artifact_uri)
    return None


def download(*, artifact_uri: str, dst: Path, tracking_uri: str | None = None) -> Path:
    """Copy the directory at ``artifact_uri`` into ``dst`` (local copy, or MLflow's download).

    ``tracking_uri`` is needed for ``mlflow-artifacts:/`` URIs (artifacts proxied by a server).
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    local_source = _local_path(artifact_uri)
    if local_source is not None:
        if not local_source.is_dir():
            raise RegistryError(f"the model artifacts at {artifact_uri} are missing")
        target = dst / local_source.name
        shutil.copytree(local_source, target)
        return target

    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=str(dst), tracking_uri=tracking_uri
        )
    except (MlflowException, OSError) as error:
        raise RegistryError(f"could not download the model artifacts at {artifact_uri}: {error}") from error
    return Path(local)


def verify(*, path: Path, expected: str, label: str) -> str:
    """Recompute the SHA-256 of ``path``; raise :class:`ArtifactIntegrityError` on a mismatch."""
    actual = sha256_of_path(path)
    if actual != expected:
        if legacy_sha256_of_path(path) == expected:
            raise ArtifactIntegrityError(
                f"{label}: its SHA-256 was recorded with the old, ambiguous tree encoding (before "
                f"{TREE_ENCODING}), which cannot prove the files are intact; refusing to load it. "
                "Retrain and register a new version (or re-register this run) to record a "
                f"{TREE_ENCODING} digest"
            )
        raise ArtifactIntegrityError(
            f"{label}: artifact SHA-256 mismatch, refusing to load: expected {expected}, actual {actual}"
        )
    return actual


@contextmanager
def verified_copy(
    *, artifact_uri: str, expected: str, label: str, tracking_uri: str | None = None
) -> Iterator[Path]:
    """A verified local copy of the model directory, deleted on exit."""
    with tempfile.TemporaryDirectory(prefix="registry_ext-") as tmp:
        local = download(artifact_uri=artifact_uri, dst=Path(tmp), tracking_uri=tracking_uri)
        if not (local / MLMODEL).is_file():
            raise ArtifactIntegrityError(f"{label}: no {MLMODEL} file at {artifact_uri}")
        verify(path=local, expected=expected, label=label)
        yield local


def _skops_file(model_dir: Path, manifest: Mapping[str, str] | None, *, label: str) -> Path:
    """The skops file the MLmodel names: a plain file name inside the directory (and the manifest)."""
    from mlflow.models import Model

    flavors = Model.load(str(model_dir / MLMODEL)).flavors
    conf = flavors.get("sklearn")
    if conf is None:
        raise RegistryError(f"{label}: the model has no sklearn flavor")
    if conf.get("serialization_format") != "skops":
        raise ArtifactIntegrityError(
            f"{label}: refusing to load a model serialized as {conf.get('serialization_format')!r}: "
            "only the skops format is accepted"
        )
    name = conf.get("pickled_model")
    if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
        raise ArtifactIntegrityError(f"{label}: the MLmodel names the model file {name!r}; refusing it")
    if manifest is not None and name not in manifest:
        raise ArtifactIntegrityError(f"{label}: the model file {name!r} is not in its signed manifest")
    return model_dir / name


def load_sklearn(
    model_dir: Path, *, label: str = "the model", manifest: Mapping[str, str] | None = None
) -> Any:
    """Deserialize the skops model of an MLflow sklearn model directory, trusting only the code's
    :data:`~churnops.contracts.artifacts.TRUSTED_TYPES`.

    The ``skops_trusted_types`` list in the artifact's own MLmodel file is never read. skops
    audits the whole file against ``TRUSTED_TYPES`` before it constructs anything; a file that
    needs anything else is refused with :class:`UntrustedTypeError` naming the types (asked of
    the file with ``skops.io.get_untrusted_types``, which constructs nothing, only on that
    path). Pickle and cloudpickle models are refused outright.
    """
    file = _skops_file(model_dir, manifest, label=label)
    import zipfile

    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(file, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException:
        untrusted = sorted(set(skops.io.get_untrusted_types(file=file)) - set(TRUSTED_TYPES))
        raise UntrustedTypeError(
            f"{label}: {file.name} needs the type(s) {', '.join(untrusted)}, which ChurnOps does not "
            "trust (only the scikit-learn/numpy types its training produces); refusing to load it"
        ) from None
    except zipfile.BadZipFile as error:
        raise ArtifactIntegrityError(f"{label}: {file.name} is not a skops file: {error}") from error


@contextmanager
def manifest_copy(
    *, artifact_uri: str, manifest: Mapping[str, str], label: str, tracking_uri: str | None = None
) -> Iterator[Path]:
    """A local copy of the model directory whose files are exactly ``manifest``'s (MLflow's own
    ``registered_model_meta`` aside), deleted on exit; :class:`ArtifactIntegrityError` otherwise."""
    with tempfile.TemporaryDirectory(prefix="registry_ext-") as tmp:
        local = download(artifact_uri=artifact_uri, dst=Path(tmp), tracking_uri=tracking_uri)
        problems = manifest_problems(local, manifest)
        if problems:
            shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
            raise ArtifactIntegrityError(
                f"{label}: the model files differ from those signed at registration ({shown}); "
                "refusing to load it"
            )
        if MLMODEL not in manifest:
            raise ArtifactIntegrityError(f"{label}: no {MLMODEL} file in its signed manifest")
        yield local


@dataclass(frozen=True, slots=True)
class SignedVersion:
    """A version as a loader sees it: identity, feature service and what registry_ext recorded."""

    name: str
    version: int | str
    feature_service: str | None
    signature: VersionSignature | None

    @property
    def label(self) -> str:
        return f"model {self.name!r} version {self.version}"


def verify_signature(*, version: SignedVersion, verifier: Verifier) -> dict[str, str]:
    """Check the version's signature; returns its manifest. Reads no artifact.

    :class:`UnsignedVersionError` for a version without one (an older release, or made outside
    registry_ext), :class:`SignatureError` for any mismatch.
    """
    label = version.label
    signed = version.signature
    if signed is None:
        raise UnsignedVersionError(
            f"{label} carries no registry signature (registered by an older release, or created "
            f"outside registry_ext); refusing to load it: {REREGISTER_HINT} it"
        )
    if not (signed.manifest and signed.signature and signed.key_id and version.feature_service):
        raise SignatureError(
            f"{label} has an incomplete registry signature (manifest, signature, key id and feature "
            f"service are all needed); refusing to load it: {REREGISTER_HINT} it"
        )
    manifest = parse_manifest(signed.manifest, label=label)
    payload = signed_payload(
        name=version.name,
        version=version.version,
        manifest_digest=manifest_digest(manifest),
        feature_service=version.feature_service,
    )
    verifier.verify(payload=payload, signature=signed.signature, key_id=signed.key_id, label=label)
    return manifest


@contextmanager
def verified_signed_copy(
    *, artifact_uri: str, version: SignedVersion, verifier: Verifier, tracking_uri: str | None = None
) -> Iterator[tuple[Path, dict[str, str]]]:
    """Signature first (no download when it fails), then the files against the signed manifest."""
    manifest = verify_signature(version=version, verifier=verifier)
    with manifest_copy(
        artifact_uri=artifact_uri, manifest=manifest, label=version.label, tracking_uri=tracking_uri
    ) as local:
        yield local, manifest


def load_signed_model(
    *, artifact_uri: str, version: SignedVersion, verifier: Verifier, tracking_uri: str | None = None
) -> Any:
    """The sklearn model of a registered version, deserialized only after its signature, its files
    and its types were checked.

    The one loader for everything that runs a registered model (serving, batch scoring,
    comparison): an unsigned version is refused like a tampered one.
    """
    with verified_signed_copy(
        artifact_uri=artifact_uri, version=version, verifier=verifier, tracking_uri=tracking_uri
    ) as (local, manifest):
        return load_sklearn(local, label=version.label, manifest=manifest)
