"""Model artifacts: where a run's model lives, download, SHA-256 verification, safe loading.

Storage is whatever MLflow's artifact repositories support: a local directory on the embedded
default, ``s3://`` (MinIO, SeaweedFS, AWS) in production. S3 credentials and endpoint come only
from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``MLFLOW_S3_ENDPOINT_URL``),
read by boto3 through MLflow; nothing here accepts or stores a secret.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from churnops.contracts.artifacts import (
    TREE_ENCODING,
    ArtifactIntegrityError,
    legacy_sha256_of_path,
    sha256_of_path,
)
from registry_ext.errors import InvalidInputError, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

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


def load_sklearn(model_dir: Path) -> Any:
    """Load an MLflow sklearn model saved in the skops format from a *verified* directory.

    MLflow 3.17 refuses every deserialization (skops included) unless the process-wide
    ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is set, because the skops trusted-types list is read
    from the model's own MLmodel file. Here that file is covered by the SHA-256 recorded at
    registration and verified just before, so the flavor configuration is trusted: we read it
    with MLflow and deserialize with skops under the recorded trusted types. Pickle and
    cloudpickle models are refused outright.
    """
    from mlflow.models import Model

    flavors = Model.load(str(model_dir / MLMODEL)).flavors
    conf = flavors.get("sklearn")
    if conf is None:
        raise RegistryError(f"the model at {model_dir} has no sklearn flavor")
    if conf.get("serialization_format") != "skops":
        raise RegistryError(
            f"refusing to load a model serialized as {conf.get('serialization_format')!r}: "
            "only the skops format is accepted"
        )
    import skops.io

    return skops.io.load(model_dir / conf["pickled_model"], trusted=conf.get("skops_trusted_types"))


def load_verified_model(
    *, artifact_uri: str, expected: str | None, label: str, tracking_uri: str | None = None
) -> Any:
    """The sklearn model at ``artifact_uri``, deserialized only after its SHA-256 matched ``expected``.

    The one loader for everything that runs a registered model (serving, batch scoring,
    comparison): a missing digest is refused like a wrong one.
    """
    if not expected:
        raise ArtifactIntegrityError(f"{label}: no sha256 is recorded for it; refusing to load it")
    with verified_copy(
        artifact_uri=artifact_uri, expected=expected, label=label, tracking_uri=tracking_uri
    ) as local:
        return load_sklearn(local)
