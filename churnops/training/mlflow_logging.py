"""What a training run writes to MLflow besides params and metrics: the model directory
(skops format, signature, input example, SHA-256), parquet artifacts, code version, hashes.

The model is saved locally with ``mlflow.sklearn.save_model`` and uploaded as the run's
``model/`` directory (docs/registry-api.md), hashed before upload and again as downloaded back
from the run, so the digest recorded is the one ``registry_ext`` recomputes at load.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnops.contracts.artifacts import MODEL_PATH, sha256_of_path
from churnops.contracts.columns import Column
from churnops.contracts.log_filters import drop_messages
from churnops.contracts.model_input import MLFLOW_TYPES, model_frame
from churnops.training.candidates import TRUSTED_TYPES
from churnops.training.errors import TrainingError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.models.signature import ModelSignature

ENTITY_DF_ARTIFACT = "entity_df.parquet"  # Feast's convention: store.mlflow.get_training_entity_df(run_id)
GATE_RESULTS_ARTIFACT = "gate_results.json"
METRICS_ARTIFACT = ("evaluation", "metrics.json")


@dataclass(frozen=True)
class CodeVersion:
    package: str
    git_commit: str | None
    git_dirty: bool | None

    def label(self) -> str:
        if self.git_commit is None:
            return self.package
        return f"{self.package}+g{self.git_commit[:12]}{'.dirty' if self.git_dirty else ''}"


def code_version() -> CodeVersion:
    """The churnops package version, plus the git commit when running from a checkout."""
    try:
        package = metadata.version("churnops")
    except metadata.PackageNotFoundError:
        package = "unknown"
    root = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return CodeVersion(package, None, None)
    try:
        commit = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [git, "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [git, "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return CodeVersion(package, None, None)
    return CodeVersion(package, commit or None, bool(status.strip()))


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of a frame: column names, dtypes and every value (row order matters)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def model_signature(columns: Sequence[Column]) -> ModelSignature:
    """Every raw feature with its kind's type (``MLFLOW_TYPES``: integers and flags ``long``,
    never ``double``), so ``mlflow.pyfunc`` takes ``model_frame``'s output as is; optional
    columns. Output: the class probabilities."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    inputs = Schema([ColSpec(MLFLOW_TYPES[c.kind], c.name, required=False) for c in columns])
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2), "probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _requirements() -> list[str]:
    pins = []
    for dist in ("scikit-learn", "skops", "pandas", "numpy", "mlflow"):
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pins.append(dist)
    return pins


@dataclass(frozen=True)
class LoggedModel:
    artifact_path: str
    sha256: str


def save_model_dir(*, model: Any, columns: Sequence[Column], input_example: pd.DataFrame, path: Path) -> str:
    """Save ``model`` as an MLflow sklearn model directory at ``path`` (skops, signature,
    input example, pinned requirements); returns its SHA-256."""
    import mlflow.sklearn

    # The environment is pinned by pip_requirements; the conda.yaml MLflow also writes wants pip's
    # version, and a uv environment has no pip: MLflow then warns on every save.
    drop_messages("mlflow.utils.environment", ("Failed to resolve installed pip version",))
    # The example is complete rows built by the one model-input builder: integer columns are
    # int64 as the signature says (a missing value would make them nullable Int64, which MLflow's
    # schema enforcement cannot turn into a long). No complete row: no example.
    complete = input_example[input_example.notna().all(axis=1)].head(5)
    example = model_frame(complete, columns=columns) if len(complete) else None
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=list(TRUSTED_TYPES),
        signature=model_signature(columns),
        input_example=example,
        pyfunc_predict_fn="predict_proba",
        pip_requirements=_requirements(),
    )
    return sha256_of_path(path)


def log_model(
    *,
    client: MlflowClient,
    run_id: str,
    model: Any,
    columns: Sequence[Column],
    input_example: pd.DataFrame,
) -> LoggedModel:
    """Save ``model`` (skops), upload it as the run's ``model/``, and return its verified SHA-256."""
    with tempfile.TemporaryDirectory(prefix="churnops-model-") as tmp:
        local = Path(tmp) / MODEL_PATH
        expected = save_model_dir(model=model, columns=columns, input_example=input_example, path=local)
        client.log_artifacts(run_id, str(local), MODEL_PATH)
        back = Path(tmp) / "downloaded"
        back.mkdir()
        downloaded = Path(client.download_artifacts(run_id, MODEL_PATH, str(back)))
        actual = sha256_of_path(downloaded)
    if actual != expected:
        raise TrainingError(
            f"the model uploaded to run {run_id} changed on the way: sha256 {expected} locally, "
            f"{actual} as downloaded back"
        )
    return LoggedModel(artifact_path=MODEL_PATH, sha256=actual)


def _split_path(path: tuple[str, str] | str) -> tuple[str, str]:
    """``"dir/name"``, ``("dir", "name")`` or a root ``"name"`` as (directory, filename)."""
    if isinstance(path, tuple):
        return path
    directory, _, name = path.rpartition("/")
    return directory, name


def log_parquet(
    *, client: MlflowClient, run_id: str, frame: pd.DataFrame, path: tuple[str, str] | str
) -> str:
    """Upload ``frame`` as a parquet artifact at ``path`` (``"directory/file.parquet"``)."""
    directory, name = _split_path(path)
    with tempfile.TemporaryDirectory(prefix="churnops-artifact-") as tmp:
        local = Path(tmp) / name
        frame.to_parquet(local, index=False)
        client.log_artifact(run_id, str(local), directory or None)
    return f"{directory}/{name}" if directory else name


def log_json(*, client: MlflowClient, run_id: str, data: Any, path: tuple[str, str] | str) -> str:
    directory, name = _split_path(path)
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=str)
    client.log_text(run_id, text, f"{directory}/{name}" if directory else name)
    return f"{directory}/{name}" if directory else name
